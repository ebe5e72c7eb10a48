"""Progress: a bar on a terminal; in a log, whole lines (every LOG_EVERY seconds, end; nothing for a stage with
nothing to do), never carriage returns or cursor movement."""

from __future__ import annotations

import io
import re

from c2kd.progress import LogLines, progress_bar


def test_log_lines_count_rate_and_time_left():
    out = io.StringIO()
    bar = LogLines(total=10, desc="embedding videos", unit="video", file=out, every=0.0)
    for _ in range(4):
        bar.update(1)
    bar.set_postfix(entries=12)
    bar.close()
    bar.close()  # once only
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"embedding videos: 1/10 video, [\d.e+]+ video/s, \d+ s, \d+ s left", lines[0]), lines[0]
    assert re.fullmatch(r"embedding videos: 4/10 video, [\d.e+]+ video/s, \d+ s, \d+ s left", lines[3]), lines[3]
    assert re.fullmatch(r"embedding videos: done, 4/10 video, .* \(entries=12\)", lines[-1]), lines[-1]
    assert len(lines) == 5 and "\r" not in out.getvalue()


def test_a_long_stage_in_a_log_writes_a_line_per_tenth_or_per_ten_minutes(monkeypatch):
    import c2kd.progress as progress

    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = LogLines(total=1000, desc="embedding captions", unit="text", file=out)
    for _ in range(1000):  # 5 s an item: a line at each tenth (every 500 s), none at each 30 s
        clock[0] += 5.0
        bar.update(1)
    bar.close()
    done = [int(line.split(": ")[1].split("/")[0]) for line in out.getvalue().splitlines()[:-1]]
    assert done == [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000], done
    slow = io.StringIO()
    bar = LogLines(total=1000, desc="slow", unit="text", file=slow)
    for _ in range(3):  # 700 s an item: far from a tenth, so a line every time ten minutes have passed
        clock[0] += 700.0
        bar.update(1)
    assert len(slow.getvalue().splitlines()) == 3


def test_log_lines_over_an_iterable_and_quiet_between_intervals():
    out = io.StringIO()
    assert list(LogLines(range(1000), desc="batches", unit="batch", file=out)) == list(range(1000))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batches: done, 1000/1000 batch, ")  # nothing within 30 s
    silent = io.StringIO()
    list(LogLines(range(5), file=silent, disable=True))
    assert silent.getvalue() == ""


def test_not_a_terminal_gets_lines(monkeypatch):
    out = io.StringIO()  # not a terminal
    monkeypatch.setattr("sys.stderr", out)
    bar = progress_bar(total=3, desc="x", unit="it")
    assert isinstance(bar, LogLines)
    bar.update(3)
    bar.close()
    assert out.getvalue().startswith("x: done, 3/3 it, ")


def test_a_stage_with_nothing_to_do_writes_nothing():
    """Issue 36: 55 of the quickstart log's 203 lines were "0/N ... to do"."""
    out = io.StringIO()
    LogLines(total=0, desc="embedding captions", file=out).close()
    LogLines(total=5, initial=5, desc="resumed and finished", file=out).close()
    assert out.getvalue() == ""

