"""The HTTP service: search, moments, health, byte-range video streaming, path safety, validation, concurrency."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from searchkit import announced_port, served_ids, serving, write_video

from c2kd.data.features import FeatureStore


def test_health_and_page(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["videos"] == 64 and health["backend"] == "exact"
    page = client.get("/")
    assert page.status_code == 200 and "search-form" in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    assert client.get("/api/languages").json()["cs"] == "Czech"


def reference_scores(checkpoint, synthetic_data, query: str) -> dict[str, float]:
    """The query's cosine with each served video, from the checkpoint and the feature store alone (numpy)."""
    from c2kd.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)[0].eval()
    store = FeatureStore(synthetic_data / "features")
    ids = served_ids(store)[1]
    videos = model.embed_videos([store[v] for v in ids]).numpy()
    return dict(zip(ids, (videos @ model.embed_texts([query]).numpy()[0]).tolist(), strict=True))


def assert_top(results: list[dict], scores: dict[str, float], k: int, only: str = "") -> None:
    """``results`` are the top ``k`` of ``scores`` among the ids starting with ``only``, best first (to float16
    rounding of the stored vectors)."""
    wanted = {v: s for v, s in scores.items() if v.startswith(only)}
    assert len(results) == min(k, len(wanted))
    got = [r["score"] for r in results]
    assert got == sorted(got, reverse=True)
    for r in results:
        assert r["score"] == pytest.approx(wanted[r["video_id"]], abs=2e-3)
    left_out = [s for v, s in wanted.items() if v not in {r["video_id"] for r in results}]
    assert max(left_out, default=-1.0) <= got[-1] + 2e-3


def test_search_get_and_post_rank_by_the_models_cosines(client, random_checkpoint, synthetic_data):
    query = "a dog runs in the park"
    scores = reference_scores(random_checkpoint, synthetic_data, query)
    got = client.get("/api/search", params={"q": query, "k": 5, "filter": "split=test"}).json()
    assert_top(got["results"], scores, 5, only="test")
    posted = client.post("/api/search", json={"query": query, "k": 5, "lang": "cz", "filters": {"split": "test"},
                                              "moments": True}).json()
    assert posted["lang"] == "cs" and [r["video_id"] for r in posted["results"]] == [
        r["video_id"] for r in got["results"]]
    for r in posted["results"]:
        assert r["video_url"] == f"/media/clips/{r['video_id']}.webm"
        assert 0 <= r["moment"]["start"] < r["moment"]["end"] <= r["metadata"]["duration"] + 1e-6
    assert_top(client.get("/api/search", params={"q": query, "k": 64}).json()["results"], scores, 64)


@pytest.mark.parametrize("request_args,status,message", [
    (("get", "/api/search", {"params": {"q": ""}}), 400, "empty"),
    (("get", "/api/search", {"params": {"q": "   "}}), 400, "empty"),
    (("get", "/api/search", {"params": {"q": "x" * 501}}), 422, "the query has 501 characters; the limit is 500"),
    (("post", "/api/search", {"json": {"query": "x" * 501}}), 422, "the query has 501 characters; the limit is 500"),
    (("get", "/api/search", {"params": {}}), 422, "q: Field required"),
    (("get", "/api/search", {"params": {"q": "dog", "k": "ten"}}), 422, "k:"),
    (("get", "/api/search", {"params": {"q": "dog", "k": 0}}), 422, "k:"),
    (("get", "/api/search", {"params": {"q": "dog", "lang": "xx"}}), 400, "Unknown language code 'xx'"),
    (("get", "/api/search", {"params": {"q": "dog", "filter": "nonsense"}}), 400, "field=value"),
    (("post", "/api/search", {"json": {"query": 5}}), 422, "query:"),
    (("post", "/api/search", {"json": {"query": ["a"]}}), 422, "query:"),
    (("post", "/api/search", {"json": {"query": "dog", "k": "many"}}), 422, "k:"),
    (("post", "/api/search", {"json": {"query": "dog", "surprise": 1}}), 422, "surprise"),
    (("post", "/api/search", {"json": {"query": "dog", "filters": {"split": {"a": 1}}}}), 422, "filters"),
    (("post", "/api/search", {"content": b"{not json", "headers": {"content-type": "application/json"}}), 422,
     "JSON"),
    (("post", "/api/moments", {"json": {"video_id": "test00001", "query": ""}}), 400, "empty"),
    (("post", "/api/moments", {"json": {"video_id": "nope", "query": "a dog"}}), 404, "nope"),
    (("post", "/api/moments", {"json": {"video_id": "test00001", "query": "a dog", "lengths": ["nan"]}}), 422,
     "lengths"),
    (("post", "/api/moments", {"json": {"video_id": "test00001", "query": "a dog", "lengths": ["inf"]}}), 422,
     "lengths"),
    (("get", "/api/moments", {"params": {"q": "a dog"}}), 422, "video_id"),
    (("get", "/api/videos/nope", {}), 404, "not in the index"),
    (("get", "/api/videos/train00001", {}), 404, "no file"),
])
def test_invalid_input_is_a_clear_4xx(client, request_args, status, message):
    method, url, kwargs = request_args
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_moments_endpoint_finds_the_best_window(client, random_checkpoint, synthetic_data):
    from c2kd.checkpoint import load_checkpoint
    from c2kd.index.spans import temporal_iou

    frames = FeatureStore(synthetic_data / "features")["test00001"]  # one row a second
    got = client.get("/api/moments", params={"video_id": "test00001", "q": "a dog runs", "k": 3}).json()
    assert got["duration"] == pytest.approx(len(frames)) and got["video_url"] == "/media/clips/test00001.webm"
    posted = client.post("/api/moments", json={"video_id": "test00001", "query": "a dog runs", "k": 3,
                                               "lengths": [2, 4]}).json()["moments"]
    # every window of 2 and 4 rows, embedded here: the first moment holds the best of them, scored by it
    model = load_checkpoint(random_checkpoint)[0].eval()
    windows = [(i, i + n) for n in (2, 4) for i in range(len(frames) - n + 1)]
    cosines = model.embed_videos([frames[i:j] for i, j in windows]).numpy() @ model.embed_texts(
        ["a dog runs"]).numpy()[0]
    peak = windows[int(np.argmax(cosines))]
    assert posted[0]["score"] == pytest.approx(float(cosines.max()), abs=1e-4)
    assert posted[0]["start"] <= peak[0] and peak[1] <= posted[0]["end"]
    assert [m["score"] for m in posted] == sorted((m["score"] for m in posted), reverse=True)
    for a, b in itertools.combinations(posted, 2):
        assert temporal_iou((a["start"], a["end"]), (b["start"], b["end"])) <= 0.5
    assert all(0 <= m["start"] < m["end"] <= len(frames) for m in posted)


def test_video_streaming_with_byte_ranges(client, served):
    _, _, videos = served
    data = (videos / "clips" / "test00001.webm").read_bytes()
    full = client.get("/api/videos/test00001")
    assert full.status_code == 200 and full.content == data and full.headers["content-type"] == "video/webm"
    assert full.headers.get("accept-ranges") == "bytes"
    part = client.get("/media/clips/test00001.webm", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get("/media/clips/test00001.webm", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    beyond = client.get("/media/clips/test00001.webm", headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416


@pytest.mark.parametrize("path", ["../secret.txt", "clips/../../secret.txt", "%2e%2e/secret.txt",
                                  "clips/%2e%2e/%2e%2e/secret.txt", "..%2fsecret.txt", "%2Fetc%2Fpasswd",
                                  "//etc/passwd", "escape.webm", "notes.txt", "clips/missing.webm",
                                  "clips\\..\\..\\secret.txt"])
def test_no_path_outside_the_video_roots(client, path):
    response = client.get(f"/media/{path}")
    assert response.status_code in (403, 404), (path, response.status_code)
    assert b"top secret" not in response.content and b"root:" not in response.content
    body = response.json()  # every refusal is the service's one JSON error shape, never a file or an HTML page
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body


def test_a_link_loop_in_the_video_folder_is_404_not_a_server_error(client, served):
    _tmp, _index, videos = served
    loops = [videos / "loop.webm", videos / "ring"]
    loops[0].symlink_to("loop.webm")  # a file link to itself
    loops[1].symlink_to("ring")
    try:
        for path in ("loop.webm", "ring/clip.webm", "ring/../clips/x.webm"):
            response = client.get(f"/media/{path}")
            assert response.status_code in (403, 404), (path, response.status_code, response.text)
            assert list(response.json()) == ["error"]
    finally:
        for link in loops:
            link.unlink()


def test_many_concurrent_clients(live_server, app):
    queries = [f"a {o} {a} in the {p}" for o in ("dog", "cat", "car", "horse") for a in ("runs", "swims")
               for p in ("park", "beach", "snow")]
    with httpx.Client(base_url=live_server, timeout=60) as c:  # one at a time first
        expected = {q: [x["video_id"] for x in c.get("/api/search", params={"q": q, "k": 5}).json()["results"]]
                    for q in queries}
    def ask(q: str) -> tuple[str, list[str], int]:
        with httpx.Client(base_url=live_server, timeout=60) as c:
            r = c.get("/api/search", params={"q": q, "k": 5})
            return q, [x["video_id"] for x in r.json()["results"]], r.status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(ask, queries * 2))
    assert all(status == 200 for _, _, status in answers)
    assert all(ids == expected[q] for q, ids, _ in answers)


# -- what each result is: poster frames, captions ---------------------------------------------------------------
def _dominant_channel(jpeg: bytes) -> int:
    """Colour channel (0 R, 1 G, 2 B) of the lower half of a still (the test videos change colour every second)."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.float32)
    return int(pixels[pixels.shape[0] // 2 + 2:].mean(axis=(0, 1)).argmax())


def test_results_show_a_poster_frame_at_the_moment_and_the_items_captions(client, captions):
    got = client.get("/api/search", params={"q": "a dog runs in the park", "k": 30, "moments": "true"}).json()
    with_files = [r for r in got["results"] if r["video_url"]]
    without = [r for r in got["results"] if not r["video_url"]]
    assert with_files and without
    for r in with_files:
        assert r["poster_url"].startswith(f"/api/posters/{r['video_id']}?t=")
        still = client.get(r["poster_url"])
        assert still.status_code == 200 and still.headers["content-type"] == "image/jpeg"
        # the still is the frame at the moment's start: that second's colour (write_video: second s is channel s % 3)
        assert _dominant_channel(still.content) == int(r["moment"]["start"]) % 3, r["moment"]
    assert all(r["poster_url"] is None for r in without)  # no file, no still
    english = {}
    for vid, lang, text in zip(captions["video_id"], captions["lang"], captions["text"]):
        if lang == "en":
            english.setdefault(vid, []).append(text)
    for r in got["results"]:
        assert r["metadata"]["captions"] == english[r["video_id"]][:3]
    assert client.get("/api/posters/train00001").status_code == 404
    unknown = client.get("/api/posters/nope")
    assert unknown.status_code == 404 and list(unknown.json()) == ["error"] and "'nope'" in unknown.json()["error"]


def test_fields_list_the_metadata_and_which_ones_filter(client):
    fields = {f["name"]: f for f in client.get("/api/fields").json()["fields"]}
    assert {v["value"]: v["count"] for v in fields["split"]["values"]} == {"test": 24, "train": 40}
    assert fields["split"]["filter"]
    assert not fields["captions"]["filter"] and not fields["video"]["filter"] and not fields["duration"]["filter"]
    assert fields["dataset"]["distinct"] == 1 and not fields["dataset"]["filter"]  # nothing to choose


@pytest.mark.parametrize(("counts", "offered"), [
    ({"train": 40, "test": 24}, True),
    ({"synthetic": 64}, False),  # one value for every video
    ({f"video{i}": 1 for i in range(20)}, False),  # one value per video (MSR-VTT's retrieval_key)
    ({"a man is walking down the street with a dog": 2, "a cat": 3}, False),  # free text (a caption)
    ({f"c{i}": 2 for i in range(60)}, False),  # too many to list
])
def test_only_categories_shared_by_videos_are_offered_as_filters(counts, offered):
    """Issue 36: MSR-VTT's caption and retrieval_key became drop-downs with one value per video."""
    from c2kd.serve.app import offered_as_filter

    assert offered_as_filter("field", counts) is offered


# -- paging ---------------------------------------------------------------------------------------------------
def test_pages_follow_each_other_and_say_when_more_follow(client):
    whole = client.get("/api/search", params={"q": "a cat swims", "k": 64}).json()
    assert whole["more"] is False and len(whole["results"]) == 64
    pages = []
    for offset in range(0, 64, 25):
        page = client.post("/api/search", json={"query": "a cat swims", "k": 25, "offset": offset}).json()
        assert page["offset"] == offset and page["more"] is (offset + 25 < 64)
        pages += page["results"]
    assert [(r["rank"], r["video_id"]) for r in pages] == [(r["rank"], r["video_id"]) for r in whole["results"]]
    beyond = client.get("/api/search", params={"q": "a cat", "k": 10, "offset": 995})
    assert beyond.status_code == 400 and "first 1000" in beyond.json()["error"]


# -- one API: both parameter names, one error format, 416, unknown filter fields --------------------------------
def test_get_and_post_take_both_names(client):
    expected = client.get("/api/search", params={"q": "a dog", "k": 5, "filter": "split=test"}).json()["results"]
    variants = [client.get("/api/search", params={"query": "a dog", "k": 5, "filters": "split=test"}),
                client.post("/api/search", json={"q": "a dog", "k": 5, "filter": {"split": "test"}}),
                client.post("/api/search", json={"query": "a dog", "k": 5, "filters": {"split": ["test"]}})]
    for response in variants:
        assert response.status_code == 200, response.text
        assert [r["video_id"] for r in response.json()["results"]] == [r["video_id"] for r in expected]
    moments = client.get("/api/moments", params={"video_id": "test00001", "query": "a dog"})
    assert moments.status_code == 200 and moments.json()["moments"]
    both = client.get("/api/search", params={"q": "a dog", "query": "a cat"})
    assert both.status_code == 422 and "not both" in both.json()["error"]


@pytest.mark.parametrize("method,path,kwargs,status,message", [
    ("get", "/docs", {}, 404, "/api/docs"),
    ("get", "/openapi.json", {}, 404, "/api/openapi.json"),
    ("get", "/redoc", {}, 404, "no such path"),
    ("get", "/api/nothing-here", {}, 404, "no such path"),
    ("delete", "/api/search", {}, 405, "DELETE"),
    ("post", "/api/search", {"content": b'{"query": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
                             "headers": {"content-type": "application/json"}}, 422, "JSON"),
    ("post", "/api/search", {"content": b"[" * 30_000 + b"]" * 30_000,
                             "headers": {"content-type": "application/json"}}, 422, "JSON"),
    ("post", "/api/search", {"content": b"[" * 50_000 + b"]" * 50_000,  # over the body limit: never read
                             "headers": {"content-type": "application/json"}}, 413, "larger than"),
])
def test_every_error_is_in_the_services_format(client, method, path, kwargs, status, message):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and message in response.json()["error"]


def test_reversed_or_unsatisfiable_byte_ranges_are_416(client, served):
    _, _, videos = served
    size = (videos / "clips" / "test00001.webm").stat().st_size
    for header in ("bytes=100-50", f"bytes={size}-", "bytes=-0"):
        for url in ("/media/clips/test00001.webm", "/api/videos/test00001"):
            response = client.get(url, headers={"Range": header})
            assert response.status_code == 416, (header, url, response.status_code)
            assert response.headers["content-range"] == f"bytes */{size}" and "error" in response.json()
    bad = client.get("/media/clips/test00001.webm", headers={"Range": "pages=1-2"})
    assert bad.status_code == 400 and "bytes=START-END" in bad.json()["error"]


def test_a_filter_on_an_unknown_field_names_the_fields(client):
    response = client.get("/api/search", params={"q": "a dog", "filter": "splitt=test"})
    assert response.status_code == 400
    message = response.json()["error"]
    assert "'splitt'" in message and "split" in message and "dataset" in message and "captions" in message
    known_but_no_match = client.get("/api/search", params={"q": "a dog", "filter": "split=nowhere"})
    assert known_but_no_match.status_code == 200 and known_but_no_match.json()["results"] == []


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory, random_checkpoint, synthetic_data):
    """Video files whose names hold URL syntax (``%41``, ``#``, ``?``, a space), and a ``pA`` decoy."""
    from c2kd.search.building import build_index
    from c2kd.serve.app import ServeSettings, create_app

    tmp = tmp_path_factory.mktemp("odd")
    videos = tmp / "videos"
    names = {"test00001": "odd/p%41.webm", "test00002": "odd/a#b.webm", "test00003": "odd/c?d e.webm"}
    for i, rel in enumerate(names.values()):
        write_video(videos / rel, seconds=3 + i)
    write_video(videos / "odd" / "pA.webm", seconds=7)
    index = build_index(random_checkpoint, synthetic_data, tmp / "index", video_roots=[videos],
                        ids=list(names), metadata={v: {"video": rel} for v, rel in names.items()}, progress=False)
    with serving(create_app(ServeSettings(index=index, video_roots=[videos]))) as url:
        yield url, videos, names


def test_video_urls_are_percent_encoded(odd_names):
    """Through a real server: the test client decodes paths twice and would hide the bug."""
    url, videos, names = odd_names
    client = httpx.Client(base_url=url, timeout=30)
    got = client.get("/api/search", params={"q": "a dog", "k": 3}).json()["results"]
    assert {r["video_id"] for r in got} == set(names)
    for r in got:
        served = client.get(r["video_url"])
        assert served.status_code == 200, r["video_url"]
        assert served.content == (videos / names[r["video_id"]]).read_bytes(), r["video_url"]


# -- cross-origin pages ---------------------------------------------------------------------------------------
def test_cors_is_off_by_default_and_on_for_the_given_origins(client, app, served):
    from c2kd.errors import ConfigError
    from c2kd.serve.app import ServeSettings, create_app

    preflight = {"Origin": "https://pages.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    assert "access-control-allow-origin" not in client.get("/api/health", headers={"Origin": "https://x.example"}).headers
    assert "access-control-allow-origin" not in client.options("/api/search", headers=preflight).headers
    _, index, videos = served
    settings = ServeSettings(index=index, video_roots=[videos],
                             cors_origins=["https://pages.example", "http://localhost:3000"])
    with TestClient(create_app(settings, engine=app.state.engine)) as c:
        allowed = c.options("/api/search", headers=preflight)
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://pages.example"
        got = c.get("/api/health", headers={"Origin": "http://localhost:3000"})
        assert got.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = c.get("/api/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with pytest.raises(ConfigError, match="scheme://host"):
        create_app(ServeSettings(index=index, cors_origins=["pages.example/path"]), engine=app.state.engine)


def test_serve_command_takes_cors_origins(served):
    """`c2kd serve --cors-origin` in a real process: a bad origin is refused before loading anything; a good one
    is answered with the CORS header."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    _, index, videos = served
    command = [sys.executable, "-c", "from c2kd.cli import main; main()", "serve", str(index), "--videos", str(videos)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    bad = subprocess.run([*command, "--cors-origin", "pages.example/app"], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode == 2 and "scheme://host" in bad.stderr and "Traceback" not in bad.stderr
    proc = subprocess.Popen([*command, "--port", "0", "--cors-origin", "https://pages.example"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = announced_port(proc)  # said once the socket listens: a request from now on waits in its backlog
        health = httpx.get(f"http://127.0.0.1:{port}/api/health", headers={"Origin": "https://pages.example"},
                           timeout=60)
        assert health.status_code == 200 and health.headers["access-control-allow-origin"] == "https://pages.example"
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_an_unexpected_error_is_json_with_an_id_that_the_log_names(app, monkeypatch, caplog):
    """Anything that is not a known error (here the engine failing mid-request) is a 500 in the service's format,
    and its traceback is logged under the id the client got."""
    def fail(*args, **kwargs):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(app.state.engine, "search_page", fail)
    with TestClient(app, raise_server_exceptions=False) as c, caplog.at_level("ERROR", logger="c2kd.serve.app"):
        got = c.get("/api/search", params={"q": "a dog"})
    assert got.status_code == 500 and got.headers["content-type"] == "application/json"
    body = got.json()
    assert body["error"] == "internal error" and len(body["id"]) == 12 and "disk" not in got.text
    logged = [r for r in caplog.records if body["id"] in r.getMessage()]
    assert len(logged) == 1 and "/api/search" in logged[0].getMessage()
    assert logged[0].exc_info and "the disk went away" in str(logged[0].exc_info[1])


def test_serve_on_a_busy_port_is_one_line_before_the_model_loads(served, tmp_path):
    import socket

    from c2kd_testkit import assert_one_line_error, run_c2kd

    _, index, _ = served
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = assert_one_line_error(run_c2kd("serve", index, "--port", port, "--checkpoint", tmp_path / "missing"),
                                     f"port {port} on 127.0.0.1 is in use", "choose another --port")
    assert "missing" not in line  # refused before the checkpoint was looked at
    assert_one_line_error(run_c2kd("serve", index, "--host", "no-such-host.invalid", "--checkpoint",
                                   tmp_path / "missing"), "--host 'no-such-host.invalid' is not an address")


def test_the_documented_query_limit_is_the_enforced_one(client):
    from c2kd.search.query import MAX_QUERY_CHARS

    schema = client.get("/api/openapi.json").json()
    params = {p["name"]: p for p in schema["paths"]["/api/search"]["get"]["parameters"]}
    assert params["q"]["schema"]["anyOf"][0]["maxLength"] == MAX_QUERY_CHARS
    body = schema["components"]["schemas"]["SearchBody"]["properties"]["query"]
    assert body["maxLength"] == MAX_QUERY_CHARS and str(MAX_QUERY_CHARS) in body["description"]
    assert client.get("/api/search", params={"q": "a dog " + "x" * (MAX_QUERY_CHARS - 6)}).status_code == 200


def test_each_json_route_documents_its_answer_with_an_example(client):
    """The OpenAPI document gives every JSON route's 200 schema with an example, and the server's real answers
    have exactly the documented fields (each model forbids others, so a field added without its docs fails)."""
    from c2kd.serve.responses import FieldsOut, HealthOut, MomentsOut, SearchOut

    schema = client.get("/api/openapi.json").json()
    for path, method in [("/api/search", "get"), ("/api/search", "post"), ("/api/moments", "get"),
                         ("/api/moments", "post"), ("/api/health", "get"), ("/api/fields", "get")]:
        ref = schema["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        documented = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        assert documented["example"] and set(documented["example"]) == set(documented["properties"]), path
    answers = {SearchOut: client.get("/api/search", params={"q": "a dog runs", "k": 3, "moments": "true"}),
               HealthOut: client.get("/api/health"), FieldsOut: client.get("/api/fields")}
    for model, answer in answers.items():
        assert answer.status_code == 200, answer.text
        model.model_validate(answer.json())
        assert set(answer.json()) == set(model.model_fields)
    first = answers[SearchOut].json()["results"][0]
    assert set(first) == {"rank", "video_id", "score", "metadata", "moment", "moments", "video_url", "poster_url",
                          "found_by"}
    moments = client.get("/api/moments", params={"video_id": first["video_id"], "q": "a dog runs"})
    if moments.status_code == 200:  # the session's server has a feature store
        MomentsOut.model_validate(moments.json())


def test_serve_says_the_url_it_listens_on_with_the_port_the_os_chose(served):
    """Issue 36: `serve` never printed its URL, and with `--port 0` the chosen port was never said."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    _, index, _ = served
    command = [sys.executable, "-c", "from c2kd.cli import main; main()", "serve", str(index), "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        said = ""
        for line in proc.stderr:  # the line comes once the model is loaded
            said = line
            if "open http" in line:
                break
        found = re.search(r"serving .*: open (http://127\.0\.0\.1:(\d+)/) \(the search page", said)
        assert found and int(found.group(2)) > 0, said
        page = httpx.get(found.group(1), timeout=30)
        assert page.status_code == 200 and "c2kd video search" in page.text
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_serve_videos_finds_files_by_id_for_an_index_built_without_them(served, random_checkpoint,
                                                                        synthetic_data, tmp_path, capsys):
    """Issue 36: `index build` without --videos, then `serve idx --videos DIR` gave video_url null, no warning."""
    from c2kd.commands.serve import announce
    from c2kd.search.building import build_index
    from c2kd.serve.app import ServeSettings, create_app
    from c2kd.serve.workers import WorkerSettings

    _, built_with, videos = served
    from c2kd.index import VideoIndex

    with VideoIndex.open(built_with) as original:
        ids = list(original.ids)
    index = build_index(random_checkpoint, synthetic_data, tmp_path / "idx", ids=ids, progress=False)
    app = create_app(ServeSettings(index=index, video_roots=[videos]))
    with_files = {p.stem for p in (videos / "clips").glob("*.webm")}
    assert sorted(app.state.without_files) == sorted(set(ids) - with_files)
    with TestClient(app) as c:
        results = c.get("/api/search", params={"q": "a dog runs", "k": len(ids)}).json()["results"]
        urls = {r["video_id"]: r["video_url"] for r in results}
        assert {v for v, url in urls.items() if url} == with_files
        some = sorted(with_files)[0]
        assert urls[some] == f"/media/clips/{some}.webm" and c.get(urls[some]).status_code == 200
        assert c.get(f"/api/videos/{some}").status_code == 200
    announce(ServeSettings(index=index, video_roots=[videos]), WorkerSettings(workers=1, host="127.0.0.1", port=1),
             app)
    said = capsys.readouterr().err
    assert said.count("warning:") == 1 and f"{len(app.state.without_files)} indexed video(s) have no file" in said


def test_a_search_says_how_many_videos_the_filters_leave(client):
    """Issue 36: the page had no total count."""
    every = client.get("/api/search", params={"q": "a dog runs", "k": 2}).json()
    test = client.get("/api/search", params={"q": "a dog runs", "k": 2, "filter": "split=test"}).json()
    assert every["total"] == 64 and test["total"] == 24
