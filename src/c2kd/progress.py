"""Progress of long work: a live bar (tqdm) on a terminal; in a log or a pipe, plain lines while a stage runs and
one when it ends, with counts, rate and time taken (no carriage returns, no cursor movement); a stage with nothing
to do writes nothing. A line comes at most every :data:`LOG_EVERY` seconds and, when the total is known, once a
tenth more of it is done (:data:`LOG_STEPS`), or after :data:`LOG_AT_LEAST` seconds without one: a 10-minute
stage writes about ten lines, not twenty.

Every long loop of the package goes through :func:`progress_bar`, with the arguments of ``tqdm``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

#: seconds between two progress lines when the output is not a terminal
LOG_EVERY = 30.0
#: with a known total, a progress line waits for another 1/LOG_STEPS of it ...
LOG_STEPS = 10
#: ... or for this many seconds, whichever comes first
LOG_AT_LEAST = 600.0
#: whether this process shows progress at all (``c2kd --no-progress ...`` turns it off)
_SHOWN = {"progress": True}


def show_progress(shown: bool) -> None:
    """Show (the default) or hide every bar and progress line of this process."""
    _SHOWN["progress"] = shown


def progress_bar(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             disable: bool = False, **options: Any) -> Any:
    """A progress bar over ``iterable`` (or updated by hand): tqdm on a terminal, :class:`LogLines` otherwise;
    nothing is shown with ``disable`` or after ``show_progress(False)``."""
    disable = disable or not _SHOWN["progress"]
    if not disable and sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, **options)
    return LogLines(iterable, total=total, desc=desc, unit=unit, disable=disable,
                    initial=options.get("initial", 0), unit_scale=bool(options.get("unit_scale", False)))


class LogLines:
    """The part of tqdm's interface the package uses, written as whole lines to ``file`` (stderr):
    ``embedding videos: 120/500 video, 8.1 video/s, 15 s, 47 s left``."""

    def __init__(self, iterable: Iterable | None = None, total: float | None = None, desc: str = "",
                 unit: str = "it", disable: bool = False, initial: float = 0, unit_scale: bool = False,
                 file: TextIO | None = None, every: float | None = None):
        self.iterable, self.desc, self.unit, self.disable = iterable, desc, unit, disable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.unit_scale = total, initial, unit_scale
        self.file = file or sys.stderr
        self.every = LOG_EVERY if every is None else every
        self.postfix = ""
        self._initial = initial
        self._start = self._last = time.monotonic()
        self._last_n = initial
        self._closed = False

    def _count(self, value: float) -> str:
        if self.unit_scale and value >= 1000:
            for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
                if value >= size:
                    return f"{value / size:.2f}{suffix}"
        return f"{value:g}"

    def _write(self, text: str) -> None:
        if not self.disable:
            self.file.write(f"{self.desc + ': ' if self.desc else ''}{text}{self.postfix}\n")
            self.file.flush()

    def _status(self) -> str:
        elapsed = time.monotonic() - self._start
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        done = f"{self._count(self.n)}" + ("" if self.total is None else f"/{self._count(self.total)}")
        left = ""
        if self.total is not None and rate > 0 and self.n < self.total:
            left = f", {(self.total - self.n) / rate:.0f} s left"
        return f"{done} {self.unit}, {rate:.3g} {self.unit}/s, {elapsed:.0f} s{left}"

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last < self.every:
            return
        step = None if self.total is None else self.total / LOG_STEPS
        if step is not None and self.n - self._last_n < step and now - self._last < LOG_AT_LEAST:
            return
        self._last, self._last_n = now, self.n
        self._write(self._status())

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **values: Any) -> None:
        items = {**(ordered_dict or {}), **values}
        self.postfix = " (" + ", ".join(f"{k}={v}" for k, v in items.items()) + ")" if items else ""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = f" ({s})" if s else ""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n > self._initial or self.total is None or self.total > self._initial:
                self._write("done, " + self._status())

    def __iter__(self) -> Iterator:
        assert self.iterable is not None, "progress() over nothing: call update() instead"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
