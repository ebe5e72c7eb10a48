"""Batch search into a JSON-lines file: answers as they come, a progress line, resumed after Ctrl-C or a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from searchkit import make_index_dataset

from c2kd.errors import DataError
from c2kd.search.batch import answer_into, answered
from c2kd.search.engine import SearchEngine
from c2kd.search.query import Query
from c2kd_testkit import assert_one_line_error, run_c2kd

WORDS = ["dog", "cat", "car", "horse", "man", "woman", "ball", "river", "kitchen", "street"]


@pytest.fixture(scope="module")
def index(tmp_path_factory, random_checkpoint, synthetic_data):
    return make_index_dataset(tmp_path_factory.mktemp("batch"), synthetic_data, random_checkpoint)


@pytest.fixture(scope="module")
def engine(index):
    opened = SearchEngine.open(index)
    yield opened
    opened.close()


def _queries(n: int) -> list[Query]:
    return [Query.make(f"a {WORDS[i % 10]} near the {WORDS[(i * 7 + 3) % 10]} number {i}") for i in range(n)]


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "took_ms"} for row in rows]


def test_each_answer_is_one_line_equal_to_the_engines_answer(engine, tmp_path):
    queries = _queries(12)
    out = tmp_path / "answers.jsonl"
    numbers = list(answer_into(out, engine, queries, k=4))
    assert numbers == list(range(12))
    expected = [{"n": n, **r.to_dict()} for n, r in enumerate(engine.search_many(queries, k=4))]
    assert _without_times(_lines(out)) == _without_times(expected)


def test_a_rerun_answers_only_what_the_file_lacks_and_drops_a_torn_last_line(engine, tmp_path):
    queries = _queries(10)
    whole = tmp_path / "whole.jsonl"
    list(answer_into(whole, engine, queries, k=3))
    cut = tmp_path / "cut.jsonl"
    lines = whole.read_text("utf-8").splitlines(keepends=True)
    cut.write_text("".join(lines[:4]) + lines[4][:25], "utf-8")  # killed while writing the 5th answer
    done = answered(cut, queries)
    assert done == {0, 1, 2, 3} and cut.read_text("utf-8") == "".join(lines[:4])
    assert list(answer_into(cut, engine, queries, k=3, skip=done)) == list(range(4, 10))
    assert _without_times(_lines(cut)) == _without_times(_lines(whole))
    assert answered(cut, queries) == set(range(10))


def test_a_file_that_is_not_these_answers_is_refused_and_left_alone(engine, tmp_path):
    queries = _queries(5)
    notes = tmp_path / "notes.jsonl"
    notes.write_text("my own notes\n", "utf-8")
    with pytest.raises(DataError, match="not the answers"):
        answered(notes, queries)
    assert notes.read_text("utf-8") == "my own notes\n"
    other = tmp_path / "other.jsonl"
    list(answer_into(other, engine, _queries(3)[::-1], k=2))
    with pytest.raises(DataError, match="queries file changed"):
        answered(other, queries)
    with pytest.raises(DataError, match="is a folder"):
        answered(tmp_path, queries)


def test_the_command_streams_shows_progress_resumes_after_ctrl_c(index, tmp_path):
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(q.text for q in _queries(200)) + "\n", "utf-8")
    out = tmp_path / "answers.jsonl"
    command = [sys.executable, "-c", "from c2kd.cli import main; main()", "search", str(index), "--queries",
               str(queries), "-k", "2", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_text("utf-8").count("\n") >= 5):  # answers arrive while it runs
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "interrupted:" in stderr and "run the same command again" in stderr
    assert "done" not in stderr
    kept = _lines(out)  # every line whole
    assert 5 <= len(kept) < 200 and [row["n"] for row in kept] == list(range(len(kept)))
    again = run_c2kd("search", index, "--queries", queries, "-k", "2", "--out", out)
    assert again.returncode == 0, again.stderr
    assert f"answered {200 - len(kept)} queries into {out} ({len(kept)} were answered before)" in again.stdout
    assert "searching: done, 200/200 query" in again.stderr  # the progress line (one every 30 s in a log)
    rows = _lines(out)
    assert [row["n"] for row in rows] == list(range(200)) and rows[:len(kept)] == kept
    done = run_c2kd("search", index, "--queries", queries, "--out", out)
    assert done.returncode == 0 and "all 200 queries are answered" in done.stdout
    assert_one_line_error(run_c2kd("search", index, "a dog", "--out", out), "--queries")
