"""The web page in a real headless browser (Debian's chromium driven by Playwright).

What a person sees is asserted on the rendered page; screenshots are kept as test artefacts (in pytest's temporary
folder, and in ``$C2KD_SCREENSHOTS`` when that is set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

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


def keep_screenshot(page, folder: Path, name: str, full_page: bool = True) -> Path:
    """Save a screenshot as a test artefact (and copy it to $C2KD_SCREENSHOTS when set)."""
    path = folder / name
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
    assert cards.count() == 12 and "12 results" in page.inner_text("#status")
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
    first.click()
    dialog = page.locator("dialog#details")
    dialog.wait_for(state="visible")
    assert dialog.locator("h2").inner_text() == vid
    assert dialog.locator("#details-captions li").first.inner_text() == english[0]
    assert "no video file" in dialog.inner_text() and "train" in dialog.inner_text()
    keep_screenshot(page, screenshots, "desktop-details.png")
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
    page.select_option("#filter-split", "train")
    page.fill("#q", "a car in the snow")
    page.click("#go")
    page.wait_for_function("location.search.includes('snow')")
    wait_for_results(page)
    assert query_of(page)["filter"] == ["split=train"]
    assert all(t == "text only" for t in page.locator(".badge").all_inner_texts() if t != "" and ":" not in t)
    page.go_back()
    page.wait_for_function("document.getElementById('q').value === 'a dog runs'")
    wait_for_results(page)
    assert page.input_value("#filter-split") == ""
    assert page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.videoId)") == first_ids
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
    assert more.is_hidden() and "64 results" in page.inner_text("#status")
    shown = page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.videoId)")
    assert shown == [h.video_id for h in app.state.engine.search("a horse", k=64).hits]


def test_while_a_search_runs_the_button_waits_and_old_results_stay(browser, live_server):
    page = open_page(browser, live_server, "/?q=a+dog&k=5")
    wait_for_results(page)
    held, sent = [], []
    page.on("request", lambda r: sent.append(r) if "/api/search" in r.url else None)
    page.route("**/api/search", lambda route: held.append(route))  # hold the answer until released below
    page.fill("#q", "a cat")
    page.click("#go")
    page.wait_for_function("document.getElementById('go').disabled")
    assert page.locator("#go .spinner").is_visible()
    assert page.locator(".card").count() == 5  # the old results stay until new ones arrive
    page.locator("#q").press("Enter")  # a second submit while one runs is dropped
    page.evaluate("document.getElementById('search-form').requestSubmit()")
    page.wait_for_timeout(0)
    assert len(held) == 1 and len(sent) == 1
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
    assert any("GET /api/search" in t.replace("\n", " ") for t in titles)
    assert any("POST /api/search" in t.replace("\n", " ") for t in titles)
    search = page.locator(".endpoint", has_text="GET /api/search").first.inner_text()
    for name in ("q", "query", "lang", "k", "offset", "filter"):
        assert f"\n{name}\t" in search or f"{name}\t" in search, name
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
