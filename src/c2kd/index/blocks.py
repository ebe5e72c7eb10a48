"""Several row arrays (the memory-mapped vectors of an index's segments) read as one matrix, never copied together.

Ten million 512-d float16 entries are 10 GB on disk: concatenating the segments to scan or to hand them to a
backend would need that much memory, and twice as much in float32. :class:`RowBlocks` answers slices and
integer arrays of rows from the blocks holding them, so a chunked scan touches one chunk at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class RowBlocks:
    """Rows of several ``[n_i, E]`` arrays as one ``[sum n_i, E]`` matrix (read-only).

    Shape:
        blocks: arrays [n_i, E] -> len() = sum n_i; [a:b] -> [b - a, E]; [rows] -> [len(rows), E]
    """

    def __init__(self, blocks: Sequence[np.ndarray], dim: int):
        self.blocks = [b for b in blocks if len(b)]
        self.dim = int(dim)
        self.starts = np.cumsum([0] + [len(b) for b in self.blocks])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.dim)

    @property
    def dtype(self) -> np.dtype:
        return self.blocks[0].dtype if self.blocks else np.dtype(np.float32)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            first, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("RowBlocks takes slices of step 1")
            parts = []
            for b in range(int(np.searchsorted(self.starts, first, side="right")) - 1, len(self.blocks)):
                lo, hi = int(self.starts[b]), int(self.starts[b + 1])
                if lo >= stop:
                    break
                parts.append(self.blocks[b][max(first, lo) - lo:min(stop, hi) - lo])
            if len(parts) == 1:
                return parts[0]
            return np.concatenate(parts) if parts else np.zeros((0, self.dim), self.dtype)
        rows = np.asarray(index, np.int64)
        block = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows), self.dim), self.dtype)
        for b in np.unique(block):
            mine = block == b
            out[mine] = self.blocks[b][rows[mine] - self.starts[b]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[0:len(self)]
        return whole if dtype is None else whole.astype(dtype)

    def appended(self, block: np.ndarray) -> RowBlocks:
        return RowBlocks([*self.blocks, block], self.dim)

    def kept(self, keep: np.ndarray) -> RowBlocks:
        """The rows where ``keep`` is True (blocks that lose no row are shared, not copied)."""
        out = []
        for b, block in enumerate(self.blocks):
            mine = keep[self.starts[b]:self.starts[b + 1]]
            out.append(block if mine.all() else np.asarray(block[mine]))
        return RowBlocks(out, self.dim)


class RowReader:
    """Rows of a ``.npy`` matrix read with ``pread`` (no memory map): a few scattered rows cost a syscall each
    and stay in the OS page cache, not in the process (a map would bring in the neighbouring pages too).

    Shape:
        read(rows [n]) -> [n, E] in the file's dtype
    """

    def __init__(self, path: str | Path):
        import os

        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
        if fortran or len(shape) != 2:
            raise ValueError(f"{path}: expected a C-ordered [n, E] matrix")
        self.path, self.shape, self.dtype, self.offset = Path(path), tuple(shape), np.dtype(dtype), offset
        self.row_bytes = self.dtype.itemsize * shape[1]
        self._fd = os.open(path, os.O_RDONLY)

    def read(self, rows: np.ndarray) -> np.ndarray:
        return read_rows([self], np.array([0, self.shape[0]]), rows)

    def close(self) -> None:
        import os

        os.close(self._fd)


#: rows apart by at most this many are read in one ``pread`` with the rows between them (16 KB of float16
#: 512-d rows: a copy from the page cache costs less than another system call)
READ_GAP = 16


def read_rows(readers: Sequence[RowReader], starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Rows of several ``.npy`` files read as one matrix (file ``f`` holds rows ``starts[f]`` to
    ``starts[f + 1]``): one ``pread`` per stretch of nearby rows (at most :data:`READ_GAP` apart), the
    stretches found for all files at once, so a few thousand scattered rows cost a few milliseconds.

    Shape:
        positions [n] -> [n, E] in the files' dtype
    """
    import os

    positions = np.asarray(positions, np.int64)
    dim, dtype = readers[0].shape[1], readers[0].dtype
    out = np.empty((len(positions), dim), dtype)
    if len(positions) == 0:
        return out
    order = np.argsort(positions, kind="stable")
    ordered = positions[order]
    file = np.searchsorted(starts, ordered, side="right") - 1
    local = ordered - np.asarray(starts)[file]
    cuts = np.flatnonzero((np.diff(file) != 0) | (np.diff(local) > READ_GAP)) + 1
    firsts, lasts = np.r_[0, cuts], np.r_[cuts, len(ordered)]
    rows = np.empty_like(out)
    for a, b, f, lo, hi in zip(firsts.tolist(), lasts.tolist(), file[firsts].tolist(), local[firsts].tolist(),
                               (local[lasts - 1] + 1).tolist()):
        reader = readers[f]
        data = os.pread(reader._fd, (hi - lo) * reader.row_bytes, reader.offset + lo * reader.row_bytes)
        block = np.frombuffer(data, dtype).reshape(hi - lo, dim)
        rows[a:b] = block[local[a:b] - lo]
    out[order] = rows
    return out


#: what a backend is handed: one array, or the segments' arrays as one matrix
Rows = np.ndarray | RowBlocks
