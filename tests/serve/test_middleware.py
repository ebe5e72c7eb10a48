"""HEAD wherever GET works (RFC 9110), the request-body limit and the length limit of the language hint."""

from __future__ import annotations

import json

import pytest

from c2kd.serve.middleware import MAX_BODY_BYTES

GET_ROUTES = ["/", "/api/health", "/api/fields", "/api/languages", "/api/docs", "/api/openapi.json",
              "/api/search?q=a+dog+runs&k=3", "/api/videos/test00001", "/media/clips/test00001.webm",
              "/static/app.js", "/favicon.ico", "/api/videos/nope", "/api/search?k=3"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_as_get_without_a_body(client, path):
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code != 405, (path, head.status_code)
    assert head.content == b""
    assert head.headers.get("content-type") == got.headers.get("content-type")
    if "content-length" in got.headers:
        assert got.headers["content-length"] == str(len(got.content))
        if "search" not in path:  # a search's answer holds its time taken: its length varies by a digit
            assert head.headers["content-length"] == got.headers["content-length"]
        else:
            assert abs(int(head.headers["content-length"]) - len(got.content)) <= 3


def test_head_of_a_byte_range_says_what_get_would_send(client, served):
    _, _, videos = served
    size = (videos / "clips" / "test00001.webm").stat().st_size
    head = client.head("/media/clips/test00001.webm", headers={"Range": "bytes=100-199"})
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-range"] == f"bytes 100-199/{size}" and head.headers["content-length"] == "100"
    assert client.head("/media/clips/test00001.webm", headers={"Range": f"bytes={size + 5}-"}).status_code == 416


def test_a_body_over_the_limit_is_413_before_it_is_read(client):
    body = json.dumps({"query": "dog", "filters": {"tags": ["x" * 100] * (MAX_BODY_BYTES // 100)}})
    for path in ("/api/search", "/api/moments"):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 413, response.text
        assert "larger than" in response.json()["error"] and len(response.text) < 300


def test_a_chunked_body_over_the_limit_is_413(client):
    def chunks():
        yield b'{"query": "dog", "lang": "'
        for _ in range(2 * MAX_BODY_BYTES // 4096):
            yield b"x" * 4096
        yield b'"}'

    response = client.post("/api/search", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and list(response.json()) == ["error"]
    small = client.post("/api/search", json={"query": "a dog runs", "k": 2})  # under the limit: answered
    assert small.status_code == 200 and len(small.json()["results"]) == 2


@pytest.mark.parametrize("size", [65, 10_000, 1_000_000])
def test_a_huge_language_hint_is_refused_short_and_not_echoed(client, size):
    lang = "x" * size
    answers = [client.post("/api/search", json={"query": "dog", "lang": lang})]
    if size < 10_000:  # a URL this long is the server's to refuse
        answers.append(client.get("/api/search", params={"q": "dog", "lang": lang}))
    for response in answers:
        assert response.status_code in (400, 413, 422), response.status_code
        assert len(response.text) < 300 and "xxxxxxxxxx" not in response.text
