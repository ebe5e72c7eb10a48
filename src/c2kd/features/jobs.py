"""Which videos to extract: find files, give each a video id, split the corpus into deterministic shards."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from c2kd.errors import ConfigError

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
                              ".m2ts", ".flv", ".wmv", ".3gp", ".ogv", ".vob"})
ID_MODES = ("stem", "name", "relpath")


@dataclass(frozen=True)
class VideoJob:
    """One video to extract: its file and the id its features are stored under."""

    path: str
    video_id: str


def _walk(root: Path, extensions: frozenset[str]) -> list[Path]:
    """Video files under ``root``, following links to folders but walking each real folder once: a link loop
    (``ln -s . loop``) or a second link to a folder already walked adds nothing."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def first_visit(folder: str) -> bool:
        try:
            info = os.stat(folder)
        except OSError:  # a broken link or a folder that vanished: nothing to walk
            return False
        key = (info.st_dev, info.st_ino)
        if key in seen:
            return False
        seen.add(key)
        return True

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        if not first_visit(dirpath):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames)
                     if not f.startswith(".") and Path(f).suffix.lower() in extensions)
    return found


def discover_videos(inputs: Sequence[str | os.PathLike], list_files: Sequence[str | os.PathLike] = (),
                    extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[tuple[Path, Path | None]]:
    """Expand inputs into video files, each with the directory it was found under (None for a named file).

    Directories are searched recursively for video extensions; a named file is taken whatever its extension
    (an unsupported one is then reported by the decoder, not silently dropped); ``list_files`` hold one path per
    line. Order is deterministic (sorted within each directory, inputs in the order given); duplicates dropped.
    """
    exts = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    items: list[tuple[Path, Path | None]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            items.extend((p, path) for p in _walk(path, exts))
        else:
            items.append((path, None))
    for list_file in list_files:
        lf = Path(list_file)
        if not lf.is_file():
            raise ConfigError(f"video list {lf} not found; give a text file with one video path per line")
        for line in lf.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                p = Path(line.strip())
                items.append((p if p.is_absolute() else lf.parent / p, None))
    seen: set[str] = set()
    unique = []
    for path, root in items:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, root))
    return unique


def video_id_for(path: Path, root: Path | None, mode: str | Callable[[Path], str]) -> str:
    """The id of a video file: ``stem`` (default), ``name`` (with extension), ``relpath`` (path under the
    input folder without extension, ``/``-separated), or a callable ``path -> id``."""
    if callable(mode):
        return str(mode(path))
    if mode == "stem":
        return path.stem
    if mode == "name":
        return path.name
    if mode == "relpath":
        rel = path.relative_to(root) if root is not None else Path(path.name)
        return rel.with_suffix("").as_posix()
    raise ConfigError(f"unknown --id-from {mode!r}; use one of {ID_MODES}")


def make_jobs(items: Sequence[tuple[Path, Path | None]], id_from: str | Callable[[Path], str] = "stem"
              ) -> list[VideoJob]:
    """Assign ids; two files with one id is an error naming both files."""
    jobs: list[VideoJob] = []
    owner: dict[str, Path] = {}
    clashes = []
    for path, root in items:
        vid = video_id_for(path, root, id_from)
        if not vid:
            raise ConfigError(f"{path}: empty video id; choose another --id-from")
        if vid in owner:
            clashes.append(f"{vid!r}: {owner[vid]} and {path}")
            continue
        owner[vid] = path
        jobs.append(VideoJob(str(path), vid))
    if clashes:
        shown = "; ".join(clashes[:5]) + (f"; and {len(clashes) - 5} more" if len(clashes) > 5 else "")
        raise ConfigError(f"{len(clashes)} video id collision(s) with --id-from {id_from}: {shown}. "
                          "Use --id-from relpath (ids keep the folder) or name (ids keep the extension), or "
                          "rename the files.")
    return jobs


def shard_of(video_id: str, num_shards: int) -> int:
    """Stable shard of a video id (SHA-1, so the same on every machine and Python run)."""
    digest = hashlib.sha1(video_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def parse_shard(spec: str | None, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n); ``"env"`` reads RANK and WORLD_SIZE (as set by torchrun); None -> (0, 1)."""
    env = os.environ if environ is None else environ
    if spec is None or spec == "":
        return 0, 1
    if spec == "env":
        if "RANK" not in env or "WORLD_SIZE" not in env:
            raise ConfigError("--shard env needs the RANK and WORLD_SIZE environment variables (torchrun sets "
                              "them); otherwise pass --shard i/n")
        index, total = int(env["RANK"]), int(env["WORLD_SIZE"])
    else:
        try:
            a, b = spec.split("/")
            index, total = int(a), int(b)
        except ValueError:
            raise ConfigError(f"--shard {spec!r}: expected i/n such as 0/4, or env") from None
    if total < 1 or not 0 <= index < total:
        raise ConfigError(f"--shard {index}/{total}: need 0 <= i < n")
    return index, total


def select_shard(jobs: Sequence[VideoJob], index: int, total: int) -> list[VideoJob]:
    """The jobs of shard ``index`` of ``total`` (every job is in exactly one shard)."""
    if total == 1:
        return list(jobs)
    return [j for j in jobs if shard_of(j.video_id, total) == index]
