"""The HTTP service: search, moments, health, byte-range video streaming, path safety, validation, concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from c2kd.data.features import FeatureStore


def test_health_and_page(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["videos"] == 64 and health["backend"] == "exact"
    page = client.get("/")
    assert page.status_code == 200 and "search-form" in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    assert client.get("/api/languages").json()["cs"] == "Czech"


def test_search_get_and_post_agree_with_the_engine(client, app):
    engine = app.state.engine
    expected = engine.search("a dog runs in the park", k=5, filters={"split": "test"})
    got = client.get("/api/search", params={"q": "a dog runs in the park", "k": 5, "filter": "split=test"}).json()
    assert [r["video_id"] for r in got["results"]] == [h.video_id for h in expected.hits]
    posted = client.post("/api/search", json={"query": "a dog runs in the park", "k": 5, "lang": "cz",
                                              "filters": {"split": "test"}, "moments": True}).json()
    assert posted["lang"] == "cs" and [r["video_id"] for r in posted["results"]] == [h.video_id for h in expected.hits]
    for r in posted["results"]:
        assert r["video_url"] == f"/media/clips/{r['video_id']}.webm"
        assert 0 <= r["moment"]["start"] < r["moment"]["end"] <= r["metadata"]["duration"] + 1e-6


@pytest.mark.parametrize("request_args,status,message", [
    (("get", "/api/search", {"params": {"q": ""}}), 400, "empty"),
    (("get", "/api/search", {"params": {"q": "   "}}), 400, "empty"),
    (("get", "/api/search", {"params": {"q": "x" * 600}}), 400, "limit is 500"),
    (("get", "/api/search", {"params": {"q": "x" * 6000}}), 422, "q:"),
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


def test_moments_endpoint(client, app, synthetic_data):
    store = FeatureStore(synthetic_data / "features")
    got = client.get("/api/moments", params={"video_id": "test00001", "q": "a dog runs", "k": 3}).json()
    expected = app.state.engine.moments("test00001", "a dog runs", k=3)
    assert [(m["start"], m["end"]) for m in got["moments"]] == [(m.start, m.end) for m in expected.moments]
    assert got["duration"] == pytest.approx(len(store["test00001"]))
    assert got["video_url"] == "/media/clips/test00001.webm"


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
    assert "error" in response.json() or response.status_code == 404


def test_many_concurrent_clients(live_server, app):
    queries = [f"a {o} {a} in the {p}" for o in ("dog", "cat", "car", "horse") for a in ("runs", "swims")
               for p in ("park", "beach", "snow")]
    expected = {q: [h.video_id for h in app.state.engine.search(q, k=5).hits] for q in queries}
    before = app.state.engine.model  # loaded once: the same objects serve every request

    def ask(q: str) -> tuple[str, list[str], int]:
        with httpx.Client(base_url=live_server, timeout=60) as c:
            r = c.get("/api/search", params={"q": q, "k": 5})
            return q, [x["video_id"] for x in r.json()["results"]], r.status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(ask, queries * 2))
    assert all(status == 200 for _, _, status in answers)
    assert all(ids == expected[q] for q, ids, _ in answers)
    assert app.state.engine.model is before
