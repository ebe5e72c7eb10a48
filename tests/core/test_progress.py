"""Progress: a bar on a terminal; in a log, whole lines (start, every LOG_EVERY seconds, end), never carriage
returns or cursor movement."""

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
    assert lines[0] == "embedding videos: 0/10 video to do"
    assert re.fullmatch(r"embedding videos: 4/10 video, [\d.e+]+ video/s, \d+ s, \d+ s left", lines[4]), lines[4]
    assert re.fullmatch(r"embedding videos: done, 4/10 video, .* \(entries=12\)", lines[-1]), lines[-1]
    assert len(lines) == 6 and "\r" not in out.getvalue()


def test_log_lines_over_an_iterable_and_quiet_between_intervals():
    out = io.StringIO()
    assert list(LogLines(range(1000), desc="batches", unit="batch", file=out)) == list(range(1000))
    assert out.getvalue().splitlines()[0] == "batches: 0/1000 batch to do"
    assert len(out.getvalue().splitlines()) == 2  # start and end: nothing between within 30 s
    silent = io.StringIO()
    list(LogLines(range(5), file=silent, disable=True))
    assert silent.getvalue() == ""


def test_not_a_terminal_gets_lines(monkeypatch):
    out = io.StringIO()  # not a terminal
    monkeypatch.setattr("sys.stderr", out)
    bar = progress_bar(total=3, desc="x", unit="it")
    assert isinstance(bar, LogLines)
    bar.close()
    assert out.getvalue().startswith("x: 0/3 it to do\n")

