"""Serving video files safely: only files inside the configured video roots, only video types."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from c2kd.errors import C2KDError

MEDIA_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska",
               ".mov": "video/quicktime", ".ogv": "video/ogg", ".avi": "video/x-msvideo"}


class MediaError(C2KDError):
    """A media path that is not served. ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers


def check_range(header: str | None, size: int) -> None:
    """Refuse a ``Range`` header the file cannot satisfy, before streaming starts.

    ``bytes=100-50`` (end before start) and ranges starting at or beyond the end of the file are 416 with
    ``Content-Range: bytes */SIZE``; a header that is not ``bytes=`` ranges is 400. Valid ranges are left to the
    file response.
    """
    if header is None:
        return
    unsatisfiable = MediaError(f"byte range {header!r} cannot be served from a file of {size} bytes: give "
                               f"bytes=START-END with START <= END < {size}", 416,
                               {"Content-Range": f"bytes */{size}"})
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        raise MediaError(f"Range {header!r} is not understood: give bytes=START-END", 400)
    for spec in specs.split(","):
        first, dash, last = spec.strip().partition("-")
        if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()) or \
                (last and not last.isdigit()):
            raise MediaError(f"Range {header!r} is not understood: give bytes=START-END", 400)
        if first and (int(first) >= size or (last and int(last) < int(first))):
            raise unsatisfiable
        if not first and int(last) == 0:
            raise unsatisfiable


def resolve_media(roots: Sequence[Path], relative: str) -> Path:
    """The file ``relative`` names inside one of ``roots``, after resolving ``..`` and symbolic links.

    Raises :class:`MediaError` (403) for anything that would leave the roots (absolute paths, ``..``, links
    pointing outside), and (404) for files that do not exist or are not videos.
    """
    if not roots:
        raise MediaError("no video folders are configured: start the server with --videos FOLDER", 404)
    if "\x00" in relative or relative.startswith(("/", "\\")) or (len(relative) > 1 and relative[1] == ":"):
        raise MediaError("video paths are relative to the video folders", 403)
    parts = Path(relative.replace("\\", "/")).parts
    if any(p == ".." for p in parts):
        raise MediaError("video paths may not contain '..'", 403)
    for root in roots:
        base = Path(root).resolve()
        try:
            candidate = (base / relative).resolve()
        except (OSError, RuntimeError):  # a link loop ("Symlink loop" before Python 3.13, ELOOP after)
            raise MediaError(f"no video {relative!r} in the video folders (its path is a link loop)", 404) from None
        if not candidate.is_relative_to(base):
            raise MediaError("this path leads outside the video folders", 403)
        if candidate.is_file():
            if candidate.suffix.lower() not in MEDIA_TYPES:
                raise MediaError(f"only video files are served ({', '.join(sorted(MEDIA_TYPES))})", 404)
            return candidate
    raise MediaError(f"no video {relative!r} in the video folders", 404)


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


def files_by_id(roots: Sequence[Path], ids: Iterable[str]) -> dict[str, str]:
    """Video files named ``<id>.<ext>`` under ``roots`` -> their path relative to the root (the first found in
    the roots' order, then by path). Links to folders are not followed, so a link loop is walked once."""
    wanted, found = set(ids), {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in MEDIA_TYPES and stem in wanted and stem not in found:
                    found[stem] = Path(os.path.relpath(os.path.join(folder, name), root)).as_posix()
    return found


def video_path_for(metadata: dict, roots: Sequence[Path]) -> str | None:
    """The relative path (under a root) of an indexed video's file, from its ``video`` metadata field."""
    value = metadata.get("video")
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    if path.is_absolute():
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a link loop
            return None
        for root in roots:
            base = Path(root).resolve()
            if real.is_relative_to(base):
                return os.path.relpath(real, base)
        return None
    return value
