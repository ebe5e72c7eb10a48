"""How a video is cut into moment windows (:class:`Windows`), over its feature rows in seconds (:class:`Timeline`).

One spec for every place that cuts windows: the moment entries of an index (``c2kd index build``), the
moments of a video of a feature store or of a file (``c2kd moments``, ``/api/moments``) and the best moment
of a search result. Its defaults (:data:`c2kd.defaults.INDEX_LENGTHS`, :data:`c2kd.defaults.INDEX_STRIDE`) were
chosen on the validation split of ``bench/bench_long_video.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from c2kd.defaults import INDEX_LENGTHS, INDEX_STRIDE, WHOLE_UP_TO
from c2kd.errors import DataError


def frame_step(times: np.ndarray) -> float:
    """Seconds between consecutive feature rows (the median gap; 1.0 for a single row)."""
    times = np.asarray(times, np.float64)
    gaps = np.diff(times)
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if len(gaps) else 1.0


@dataclass(frozen=True)
class Timeline:
    """A video's feature rows in seconds: row ``i`` starts at ``times[i]`` and lasts ``step`` (the median gap),
    the last one at most until ``end``, the video's real length when it is known (e.g. 50.07 s, where the rows
    alone would say 51).

    Shape:
        times [T] float64 seconds
    """

    times: np.ndarray
    step: float
    end: float | None = None

    @classmethod
    def of(cls, times: np.ndarray | None, rows: int = 0, end: float | None = None) -> Timeline:
        """The timeline of stored timestamps; with none (None or empty), ``rows`` rows one second apart.
        ``end``: the video's length in seconds, if known (ignored unless after the last row's start)."""
        if times is None or len(times) == 0:
            t = np.arange(rows, dtype=np.float64)
        else:
            t = np.asarray(times, np.float64)
        known = end is not None and math.isfinite(end) and (len(t) == 0 or end > t[-1])
        return cls(t, frame_step(t), float(end) if known and end is not None else None)

    @classmethod
    def of_video(cls, store, video_id: str) -> Timeline:
        """The timeline of a video of a :class:`~c2kd.data.features.FeatureStore`, ending at its recorded length
        (stores written before lengths were recorded: where its last row ends)."""
        return cls.of(store.times(video_id), end=store.duration(video_id))

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration(self) -> float:
        """The video's length in seconds: ``end`` when known, else where the last row ends (0 for a video with
        no rows): what an index records and pages show."""
        if self.end is not None:
            return self.end
        return float(self.times[-1] + self.step) if len(self.times) else 0.0

    @property
    def extent(self) -> float:
        """Seconds from the first row's start to the video's end."""
        return self.duration - float(self.times[0]) if len(self.times) else 0.0

    def rows(self, seconds: float) -> int:
        """Rows of a window of ``seconds`` (at least one)."""
        return max(1, int(round(seconds / self.step)))

    def span(self, first: int, last: int) -> tuple[float, float]:
        """Start and end seconds of rows ``first`` to ``last`` (exclusive); never past the video's end."""
        return float(self.times[first]), min(float(self.times[last - 1] + self.step), self.duration)


def sliding_windows(n_rows: int, lengths: Sequence[int], stride_fraction: float = INDEX_STRIDE
                    ) -> list[tuple[int, int]]:
    """All windows ``[i, j)`` of the given lengths (in rows) with stride ``max(1, length * stride_fraction)``.

    The last window of each length is aligned with the end of the video, so no frame is left out; lengths
    longer than the video give one window over the whole video. Duplicates are removed; order is stable.
    """
    if n_rows <= 0:
        return []
    out: dict[tuple[int, int], None] = {}
    for length in sorted({max(1, min(int(n), n_rows)) for n in lengths}):
        stride = max(1, int(round(length * stride_fraction)))
        starts = list(range(0, n_rows - length + 1, stride))
        if starts[-1] != n_rows - length:
            starts.append(n_rows - length)
        for i in starts:
            out[(i, i + length)] = None
    return list(out)


def check_lengths(lengths: Sequence[float]) -> None:
    """Window lengths must be positive, finite seconds (NaN or inf would make every window the same)."""
    if not lengths or not all(math.isfinite(x) and x > 0 for x in lengths):
        raise DataError(f"window lengths must be positive, finite seconds, e.g. 2,4,8; got {list(lengths)}")


@dataclass(frozen=True)
class Windows:
    """Window lengths in seconds and a stride (a fraction of each length); for an index, also the longest video
    kept as one whole-clip entry.

    An index cuts a video longer than ``whole_up_to`` seconds (and than the longest window) into windows;
    shorter ones stay one whole-clip entry, and ``lengths=()`` keeps every video one entry. Moments of one video
    (:meth:`cut`) always cut it.
    """

    lengths: tuple[float, ...] = INDEX_LENGTHS
    stride: float = INDEX_STRIDE
    whole_up_to: float = WHOLE_UP_TO

    def __post_init__(self) -> None:
        if self.lengths:
            check_lengths(self.lengths)
        if not (math.isfinite(self.stride) and 0 < self.stride <= 1):
            raise DataError(f"the moment stride must be a fraction of the window length in (0, 1], got {self.stride}")
        if not (math.isfinite(self.whole_up_to) and self.whole_up_to >= 0):
            raise DataError(f"the longest whole clip must be 0 or more seconds, got {self.whole_up_to}")

    def to_dict(self) -> dict:
        return {"lengths": list(self.lengths), "stride": self.stride, "whole_up_to": self.whole_up_to}

    @classmethod
    def from_dict(cls, data: dict | None) -> Windows:
        """The windows an index recorded; an index that records none holds whole clips only."""
        if not data:
            return cls(())
        return cls(tuple(float(x) for x in data.get("lengths", ())), float(data.get("stride", INDEX_STRIDE)),
                   float(data.get("whole_up_to", 0.0)))

    def cut(self, timeline: Timeline) -> list[tuple[int, int]]:
        """Every window of a video as rows ``[first, last)``, lengths in ascending order (see
        :func:`sliding_windows`)."""
        check_lengths(self.lengths)
        return sliding_windows(len(timeline), [timeline.rows(s) for s in self.lengths], self.stride)

    def spans(self, timeline: Timeline | np.ndarray) -> list[tuple[int, int, float, float]] | None:
        """An index's windows of a video (its timeline, or its feature timestamps [T] seconds): ``(first row,
        last row (exclusive), start s, end s)`` in time order (neighbours stored together); None when the video
        is no longer than ``whole_up_to`` or the longest window (it stays one whole clip)."""
        timeline = timeline if isinstance(timeline, Timeline) else Timeline.of(timeline)
        if not self.lengths or len(timeline) == 0:
            return None
        if timeline.extent <= max(*self.lengths, self.whole_up_to) + 1e-6:
            return None
        return [(i, j, *timeline.span(i, j)) for i, j in sorted(self.cut(timeline))]
