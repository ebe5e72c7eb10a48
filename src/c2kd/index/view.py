"""A snapshot of the index (:class:`View`): its videos, their entries and metadata, and their vectors read on demand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.index.blocks import RowBlocks, RowReader, read_rows
from c2kd.index.filters import MetadataValue
from c2kd.index.segments import SEGMENT_DIR, Segment


@dataclass
class View:
    """An immutable snapshot of the index: its videos (ids, metadata) and their entries (keys ascending).

    A video's entries are consecutive: video ``v`` owns entries ``first[v]`` to ``first[v] + count[v]``.
    """

    segments: list[Segment]
    ids: list[str] = field(init=False)
    metadata: list[dict[str, MetadataValue]] = field(init=False)
    position: dict[str, int] = field(init=False)
    keys: np.ndarray = field(init=False)  # [n] int64
    entry_video: np.ndarray = field(init=False)  # [n] int64 video position of each entry
    start: np.ndarray = field(init=False)  # [n] float32 seconds
    end: np.ndarray = field(init=False)  # [n] float32 seconds
    whole: np.ndarray = field(init=False)  # [n] bool
    first: np.ndarray = field(init=False)  # [V] int64
    count: np.ndarray = field(init=False)  # [V] int64
    _starts: np.ndarray = field(init=False)  # first entry of each segment
    _readers: list[RowReader] = field(init=False, default_factory=list)  # pread instead of the maps, when set
    _inverted: dict[str, dict[str, np.ndarray]] = field(init=False, default_factory=dict)
    _fields: dict[str, dict[str, int]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        segs = self.segments
        self.ids = [i for s in segs for i in s.ids]
        self.metadata = [m for s in segs for m in s.metadata]
        self.position = {vid: i for i, vid in enumerate(self.ids)}
        video_offsets = np.cumsum([0] + [len(s.ids) for s in segs])

        def joined(name: str, dtype: Any) -> np.ndarray:
            parts = [np.asarray(getattr(s, name), dtype) for s in segs]
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        self.keys, self.start = joined("keys", np.int64), joined("start", np.float32)
        self.end, self.whole = joined("end", np.float32), joined("whole", bool)
        parts = [s.video.astype(np.int64) + off for s, off in zip(segs, video_offsets)]
        self.entry_video = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        self.count = np.bincount(self.entry_video, minlength=len(self.ids)).astype(np.int64)
        self.first = np.concatenate([[0], np.cumsum(self.count)[:-1]]).astype(np.int64)
        self._starts = np.cumsum([0] + [len(s.keys) for s in segs])

    @property
    def entries(self) -> int:
        return len(self.keys)

    def positions_of(self, keys: np.ndarray) -> np.ndarray:
        """Entry positions of the keys that are in the index (in the keys' order). Shape: [n] -> [n' <= n]."""
        pos, present = self.locate(keys)
        return pos[present]

    def locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entry position of each key, and whether the key is in the index (its position is meaningless if not).

        Shape:
            keys [n] -> positions [n] int64, present [n] bool
        """
        keys = np.asarray(keys, np.int64)
        n = len(self.keys)
        if n and self.keys[0] == 0 and self.keys[-1] == n - 1:  # never removed from: a key is its position
            return keys, (keys >= 0) & (keys < n)
        pos = np.searchsorted(self.keys, keys)
        return pos, (pos < n) & (self.keys[np.minimum(pos, n - 1)] == keys)

    def read_rows_directly(self, root: Path) -> None:
        """Read the rows :meth:`vectors` is asked for with ``pread`` instead of the memory maps (the candidates an
        approximate backend found, a small filtered subset, one video's windows): they then stay in the OS page
        cache, not in the process. A scan of all entries reads the maps (:meth:`all_vectors`)."""
        self._readers = [RowReader(root / SEGMENT_DIR / f"{seg.name}.npy") for seg in self.segments]

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers = []

    def all_vectors(self, dim: int) -> RowBlocks:
        """Every entry's vector, as one matrix over the segments' memory maps (nothing copied). Shape: [n, E]."""
        return RowBlocks([s.vectors for s in self.segments], dim)

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """Vectors of some entry positions, as stored (float32 or float16). Shape: [n] -> [n, E]."""
        positions = np.asarray(positions, np.int64)
        if self._readers:
            return read_rows(self._readers, self._starts, positions)
        seg = np.searchsorted(self._starts, positions, side="right") - 1
        out = [self.segments[s].vectors[positions[seg == s] - self._starts[s]] for s in np.unique(seg)]
        order = np.argsort(np.argsort(seg, kind="stable"), kind="stable")
        return np.concatenate(out)[order] if out else np.zeros((0, 0), np.float32)

    def video_entries(self, videos: np.ndarray) -> np.ndarray:
        """Entry positions of some video positions, video after video. Shape: [V'] -> [n']."""
        videos = np.asarray(videos, np.int64)
        if len(videos) == 0:
            return np.zeros(0, np.int64)
        counts = self.count[videos]
        offsets = np.repeat(self.first[videos] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return np.arange(int(counts.sum()), dtype=np.int64) + offsets

    def field_counts(self) -> dict[str, dict[str, int]]:
        """Metadata field -> {value as text: number of videos} (list values count once per item); built once."""
        if self._fields is None:
            counts: dict[str, dict[str, int]] = {}
            for meta in self.metadata:
                for fld, value in meta.items():
                    table = counts.setdefault(fld, {})
                    for item in value if isinstance(value, list) else [value]:
                        if item is not None:
                            table[str(item)] = table.get(str(item), 0) + 1
            self._fields = counts
        return self._fields

    def payloads(self) -> list[dict[str, MetadataValue]]:
        """One payload per entry: its video's metadata and ``video_id`` (what a backend that evaluates filters itself reads)."""
        per_video = [{**m, "video_id": vid} for vid, m in zip(self.ids, self.metadata)]
        return [per_video[v] for v in self.entry_video]

    def allowed_videos(self, filters: Mapping[str, list]) -> np.ndarray:
        """Positions of the videos that pass a normalised filter (an inverted index per field, built lazily)."""
        result: np.ndarray | None = None
        for fld, accepted in filters.items():
            table = self._inverted.get(fld)
            if table is None:
                groups: dict[str, list[int]] = {}
                for pos, meta in enumerate(self.metadata):
                    value = meta.get(fld)
                    for item in value if isinstance(value, list) else [value]:
                        if item is not None:
                            groups.setdefault(str(item), []).append(pos)
                table = {v: np.asarray(p, np.int64) for v, p in groups.items()}
                self._inverted[fld] = table
            hits = [table[str(a)] for a in accepted if str(a) in table]
            here = np.unique(np.concatenate(hits)) if hits else np.zeros(0, np.int64)
            result = here if result is None else np.intersect1d(result, here, assume_unique=True)
        return np.zeros(0, np.int64) if result is None else result
