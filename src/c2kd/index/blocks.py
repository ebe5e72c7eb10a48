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
        import os

        rows = np.asarray(rows, np.int64)
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        cuts = np.flatnonzero(np.diff(sorted_rows) > 1) + 1  # one read per run of consecutive rows
        for first, last in zip(np.r_[0, cuts], np.r_[cuts, len(rows)]):
            if first == last:
                continue
            lo, hi = int(sorted_rows[first]), int(sorted_rows[last - 1]) + 1
            block = np.frombuffer(os.pread(self._fd, (hi - lo) * self.row_bytes, self.offset + lo * self.row_bytes),
                                  self.dtype).reshape(hi - lo, self.shape[1])
            out[order[first:last]] = block[sorted_rows[first:last] - lo]
        return out

    def close(self) -> None:
        import os

        os.close(self._fd)


#: what a backend is handed: one array, or the segments' arrays as one matrix
Rows = np.ndarray | RowBlocks
