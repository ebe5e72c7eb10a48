"""The authors' released weights: one archive (``weights.tar.gz``, the address in their README) holding their
trainer's checkpoints; fetched once, the named model's ``.pth`` taken out and imported.

The archive's inner layout is not documented. A release name picks the checkpoint whose path names its data set
(``msrvtt`` for ``authors-msrvtt``, ...) and no teacher; when that is not exactly one file, the candidates are
listed and ``--member PATH`` picks one.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from c2kd.errors import ConfigError, DataError

#: the archive of model weights named in the authors' README ("Download the model weights here")
WEIGHTS_URL = "https://data.csail.mit.edu/placesaudio/c2kd/weights.tar.gz"
ARCHIVE_NAME = "c2kd-authors-weights.tar.gz"


@dataclass(frozen=True)
class Release:
    """One released model: the words its checkpoint's path contains (any of them) and what it is."""

    keywords: tuple[str, ...]
    description: str


#: the authors' released students, by the name ``c2kd model download`` takes
RELEASES: dict[str, Release] = {
    "authors-msrvtt": Release(("msrvtt", "msr_vtt", "msr-vtt"),
                              "the authors' C2KD student for Multi-MSRVTT (LaBSE, CLIP ViT-B/32 frames; their demos)"),
    "authors-youcook2": Release(("youcook",), "the authors' C2KD student for Multi-YouCook2"),
    "authors-vatex": Release(("vatex",), "the authors' C2KD student for VATEX"),
    "authors-rudder": Release(("rudder",), "the authors' C2KD student for RUDDER"),
}


def fetch(url: str, out: Path, timeout: float = 60.0, progress: Callable[[int], None] | None = None) -> Path:
    """Download ``url`` to ``out`` (kept: a second call reads the file already there); written as ``.part``
    first and renamed when complete."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as fh:
            while block := response.read(1 << 20):
                fh.write(block)
                if progress is not None:
                    progress(len(block))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataError(f"cannot download {url} ({exc}); download it where the address is reachable and give "
                        f"the file with --archive, or the .pth with `c2kd model import-authors`") from exc
    os.replace(part, out)
    return out


def checkpoint_members(archive: Path) -> list[str]:
    """The ``.pth`` files in the archive, in its order."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            return [m.name for m in tar if m.isfile() and m.name.endswith(".pth")]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive} is not a readable tar archive ({exc}); download it again") from exc


def choose_member(name: str, members: list[str], archive: Path) -> str:
    """The checkpoint of release ``name`` among ``members`` (see the module's docstring)."""
    release = RELEASES[name]
    hits = [m for m in members if any(k in m.lower() for k in release.keywords) and "teacher" not in m.lower()]
    if len(hits) == 1:
        return hits[0]
    listed = "\n  ".join(members) or "(none)"
    why = "no checkpoint names" if not hits else f"{len(hits)} checkpoints name"
    raise DataError(f"{archive}: {why} {release.keywords[0]!r}; pick one with --member PATH. Its .pth files:\n"
                    f"  {listed}")


def extract_member(archive: Path, member: str, out: Path) -> Path:
    """Copy one file out of the archive to ``out`` (no other file is written; the path is not trusted)."""
    if out.is_file():
        return out
    part = out.with_name(out.name + ".part")
    try:
        with tarfile.open(archive, "r:*") as tar:
            info = tar.getmember(member)
            source = tar.extractfile(info)
            if source is None:
                raise DataError(f"{archive}: {member} is not a file")
            with source, open(part, "wb") as fh:
                shutil.copyfileobj(source, fh, 1 << 24)
    except KeyError as exc:
        raise ConfigError(f"{archive} has no member {member!r}; its .pth files: "
                          f"{', '.join(checkpoint_members(archive))}") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive} cannot be read ({exc}); download it again") from exc
    os.replace(part, out)
    return out


def download_release(name: str, out: Path, url: str = WEIGHTS_URL, archive: Path | None = None,
                     member: str | None = None, text_backbone: str | None = None,
                     progress: Callable[[int], None] | None = None, overwrite: bool = False) -> tuple[Path, str]:
    """Fetch the authors' weights archive into ``out`` (or read ``archive``), take release ``name``'s checkpoint
    out of it and import it into ``out/NAME``; returns that folder and the archive member read."""
    from c2kd.authors.importer import import_authors_checkpoint

    if name not in RELEASES:
        raise ConfigError(f"unknown release {name!r}; the authors' released models: {', '.join(RELEASES)}")
    archive = archive if archive is not None else fetch(url, out / ARCHIVE_NAME, progress=progress)
    chosen = member or choose_member(name, checkpoint_members(archive), archive)
    pth = extract_member(archive, chosen, out / f"{name}.pth")
    folder = out / name
    import_authors_checkpoint(pth, folder, text_backbone=text_backbone, overwrite=overwrite)
    return folder, chosen
