"""Property-based pass (Hypothesis) over the HTTP API and the value parsing of the commands: whatever a client
or a user types, the answer is a 4xx in the service's JSON format or a one-line usage error, never a 500 or a
traceback."""

from __future__ import annotations

import json
import math
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c2kd.errors import C2KDError
from c2kd.index import parse_filter_options, parse_options
from c2kd.index.options import split_options
from c2kd.search.query import Query, validate_k, validate_language

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
#: text a user or client may send: any unicode (controls, surrogates left out by the transport), often short
TEXT = st.text(max_size=40) | st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000)
NUMBER = st.integers(min_value=-10**12, max_value=10**12).map(str) | st.floats().map(str) | TEXT


@pytest.fixture(scope="module")
def loose_client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def assert_refused_or_answered(response) -> None:
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error, str) and error and "Traceback" not in error


@SETTINGS
@given(q=TEXT, lang=st.none() | TEXT, k=st.none() | NUMBER, offset=st.none() | NUMBER,
       filters=st.lists(TEXT, max_size=3), group=st.none() | st.sampled_from(["true", "false", "maybe", ""]))
def test_search_get_never_fails(loose_client, q, lang, k, offset, filters, group):
    params: dict = {"q": q, "filter": filters}
    for name, value in (("lang", lang), ("k", k), ("offset", offset), ("group", group)):
        if value is not None:
            params[name] = value
    assert_refused_or_answered(loose_client.get("/api/search", params=params))


def post(client, path: str, body):
    """POST a JSON body as a client may write it (NaN and Infinity included, which Python's JSON reads)."""
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@SETTINGS
@given(body=st.fixed_dictionaries({}, optional={"query": JSON, "q": JSON, "lang": JSON, "k": JSON, "offset": JSON,
                                                 "filters": JSON, "group": JSON, "moments": JSON}) | JSON)
def test_search_post_never_fails(loose_client, body):
    assert_refused_or_answered(post(loose_client, "/api/search", body))


@SETTINGS
@given(body=st.fixed_dictionaries({"video_id": st.sampled_from(["test00001", "nope"]) | TEXT},
                                  optional={"query": TEXT, "lang": JSON, "k": JSON, "lengths": JSON, "iou": JSON}))
def test_moments_post_never_fails(loose_client, body):
    body.setdefault("query", "a dog")
    assert_refused_or_answered(post(loose_client, "/api/moments", body))


@SETTINGS
@given(video_id=TEXT.filter(bool), q=TEXT, k=st.none() | NUMBER)
def test_moments_get_and_posters_never_fail(loose_client, video_id, q, k):
    params = {"video_id": video_id, "q": q, **({"k": k} if k is not None else {})}
    assert_refused_or_answered(loose_client.get("/api/moments", params=params))
    poster = loose_client.get(f"/api/posters/{quote(video_id, safe='')}", params={"t": k or "0"})
    assert poster.status_code < 500


def refused_cleanly(parse, *args) -> None:
    """``parse`` returns, or raises a C2KD error (a one-line usage error at the command line), nothing else."""
    try:
        parse(*args)
    except C2KDError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), str(exc)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(TEXT, max_size=4))
def test_option_and_filter_parsing(items):
    refused_cleanly(parse_filter_options, items)
    try:
        options = parse_options(items)
    except C2KDError:
        return
    for backend in ("exact", "faiss", "qdrant"):
        refused_cleanly(split_options, backend, options)


@settings(max_examples=300, deadline=None)
@given(value=st.integers() | st.floats() | st.text(max_size=12) | st.booleans() | st.none(),
       name=st.sampled_from(["nprobe", "nlist", "m", "nbits", "M", "ef_search", "kind", "candidates_per_hit",
                             "chunk", "url", "train_sample"]))
def test_any_option_value_is_taken_or_refused_in_one_line(value, name):
    for backend in ("exact", "faiss", "qdrant"):
        refused_cleanly(split_options, backend, {name: value})


@settings(max_examples=300, deadline=None)
@given(text=TEXT, lang=st.none() | TEXT, k=st.integers() | st.floats(allow_nan=True).filter(
    lambda x: not (isinstance(x, float) and math.isnan(x))))
def test_query_values(text, lang, k):
    refused_cleanly(Query.make, text, lang)
    refused_cleanly(validate_language, lang)
    refused_cleanly(validate_k, k)


@settings(max_examples=300, deadline=None)
@given(lengths=TEXT | st.lists(st.floats(), max_size=5).map(lambda xs: ",".join(map(str, xs))),
       stride=st.floats(), whole=st.floats())
def test_moment_window_options(lengths, stride, whole):
    from c2kd.commands.search import _windows

    refused_cleanly(_windows, lengths, stride, whole)
