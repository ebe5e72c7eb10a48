"""Poster frames: small JPEG stills of each indexed video file, taken at index time and served with results.

Each video with a file gets a folder ``<index>/posters/<key>/`` of stills named by their time in milliseconds
(``000012000.jpg`` = 12 s): one per second for videos up to :data:`MAX_POSTERS` seconds, evenly spaced beyond.
A search result shows the still at (or just before) the start of its best moment.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

POSTER_DIR = "posters"
#: at most this many stills per video
MAX_POSTERS = 48
#: stills are scaled down to this width (height keeps the aspect ratio)
POSTER_WIDTH = 320

log = logging.getLogger(__name__)


def poster_folder(index_root: str | os.PathLike, video_id: str) -> Path:
    """Where the stills of one video live (named by a hash: ids may hold any character)."""
    key = hashlib.sha1(video_id.encode("utf-8")).hexdigest()[:24]
    return Path(index_root) / POSTER_DIR / key


def _shrink(image: np.ndarray) -> np.ndarray:
    """Scale an RGB frame down to :data:`POSTER_WIDTH` pixels wide. Shape: [H, W, 3] -> [h, w, 3] uint8."""
    from PIL import Image

    height, width = image.shape[:2]
    if width <= POSTER_WIDTH:
        return image
    size = (POSTER_WIDTH, max(1, round(height * POSTER_WIDTH / width)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def write_posters(video_file: str | os.PathLike, folder: Path, duration: float | None = None) -> int:
    """Decode ``video_file`` (PyAV) and write its stills into ``folder`` atomically; returns how many.

    ``duration`` (seconds) is used when the container does not state its own.

    Raises:
        c2kd.features.decode.VideoDecodeError: the file cannot be decoded.
    """
    from PIL import Image

    from c2kd.features.decode import iter_sampled_frames, probe
    from c2kd.io import atomic_path

    duration = probe(video_file).duration or duration
    fps = 1.0 if not duration or duration <= MAX_POSTERS else MAX_POSTERS / duration
    count = 0
    with atomic_path(folder, "*.jpg") as tmp:
        tmp.mkdir(parents=True)
        for frame in iter_sampled_frames(video_file, fps, transform=_shrink, check_truncation=False):
            if count >= MAX_POSTERS:
                break
            millis = round(frame.index / fps * 1000)
            Image.fromarray(frame.image).save(tmp / f"{millis:09d}.jpg", quality=80)
            count += 1
    return count


def make_posters(index_root: str | os.PathLike, videos: Mapping[str, str], roots: Sequence[Path],
                 durations: Mapping[str, float] | None = None) -> int:
    """Stills for every video of ``videos`` (id -> path relative to one of ``roots``) that has none yet.

    A file that cannot be decoded is skipped with a warning (its results show the item without a picture).
    Returns how many videos got stills. Needs PyAV and Pillow (``pip install 'c2kd[video]'``); without them no
    stills are made and a warning says so.
    """
    try:
        import av  # noqa: F401
        import PIL  # noqa: F401
    except ImportError:
        log.warning("no poster frames: they need PyAV and Pillow (pip install 'c2kd[video]')")
        return 0
    from c2kd.features.decode import VideoDecodeError

    made = 0
    for video_id, relative in videos.items():
        folder = poster_folder(index_root, video_id)
        if folder.is_dir():
            continue
        file = next((Path(r) / relative for r in roots if (Path(r) / relative).is_file()), None)
        if file is None:
            continue
        try:
            write_posters(file, folder, (durations or {}).get(video_id))
            made += 1
        except VideoDecodeError as exc:
            log.warning("no poster frames for %s: %s", video_id, exc)
    return made


def poster_at(index_root: str | os.PathLike, video_id: str, seconds: float = 0.0) -> Path | None:
    """The still of ``video_id`` taken at ``seconds`` or the latest one before it (None: the video has none)."""
    folder = poster_folder(index_root, video_id)
    if not folder.is_dir():
        return None
    stills = sorted(p for p in folder.iterdir() if p.suffix == ".jpg" and p.stem.isdigit())
    if not stills:
        return None
    target = max(0.0, float(seconds)) * 1000 + 1  # +1 ms: a still named by a rounded time still counts
    before = [p for p in stills if int(p.stem) <= target]
    return before[-1] if before else stills[0]


def remove_posters(index_root: str | os.PathLike, video_ids: Sequence[str]) -> None:
    """Delete the stills of removed videos."""
    import shutil

    for video_id in video_ids:
        shutil.rmtree(poster_folder(index_root, video_id), ignore_errors=True)
