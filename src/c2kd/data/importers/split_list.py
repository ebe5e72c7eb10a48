"""Full listings of evaluation splits (e.g. MSR-VTT 1k-A): videos without features are counted as missing."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from c2kd.errors import DataError

_ID_COLUMNS = ("video_id", "vid_key", "id")
_TEXT_COLUMNS = ("sentence", "text", "caption")


@dataclass(frozen=True)
class SplitListing:
    """The videos of a split and one English caption each, in file order.

    ``aliases`` maps every other id column of a row (e.g. MSR-VTT's ``vid_key`` ``msr9770``) to its
    ``video_id``.
    """

    path: Path
    captions: dict[str, str]
    aliases: dict[str, str]

    def canonical(self, video_id: str) -> str | None:
        """The listing's id for ``video_id`` (given in any of its id columns), or None if not listed."""
        if video_id in self.captions:
            return video_id
        return self.aliases.get(video_id)


def read_split_listing(path: str | os.PathLike) -> SplitListing:
    """Read a ``;``- or ``,``-separated CSV with a header holding a video id column and a caption column.

    MSR-VTT's ``MSRVTT_JSFUSION_test.csv`` (``key;vid_key;video_id;sentence``) is read as is.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found; --test-csv needs the split's CSV (e.g. MSRVTT_JSFUSION_test.csv)")
    with open(path, newline="", encoding="utf-8") as fh:
        header = fh.readline()
        delimiter = ";" if header.count(";") > header.count(",") else ","
        fh.seek(0)
        rows = list(csv.DictReader(fh, delimiter=delimiter))
    columns = list(rows[0]) if rows else []
    id_col = next((c for c in _ID_COLUMNS if c in columns), None)
    text_col = next((c for c in _TEXT_COLUMNS if c in columns), None)
    if id_col is None or text_col is None:
        raise DataError(
            f"{path}: needs a header with one of {_ID_COLUMNS} and one of {_TEXT_COLUMNS}; "
            f"found {columns or 'no rows'}"
        )
    captions: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        vid = (row[id_col] or "").strip()
        if not vid:
            raise DataError(f"{path}, line {line}: empty {id_col}")
        if vid in captions:
            raise DataError(
                f"{path}, line {line}: video {vid!r} is listed twice; a split lists each video once"
            )
        captions[vid] = (row[text_col] or "").strip()
        for other in _ID_COLUMNS:
            if other != id_col and other in row and row[other] and row[other] != vid:
                aliases[row[other].strip()] = vid
    return SplitListing(path, captions, aliases)
