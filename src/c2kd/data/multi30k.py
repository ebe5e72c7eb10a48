"""The Multi30K *proxy* benchmark: real multilingual captions, with a text stand-in for the video.

Multi30K describes each Flickr30k image twice over: task1 has one English caption with professional German,
French and Czech translations; task2 has five independent English descriptions, one of which is the task1
caption. There are no images here, so the visual side is a **proxy**: an item's "video" is the sequence of its
*other four* English descriptions, each encoded as one "frame" by a frame encoder that is a different model from
the text encoders being trained. Retrieval then asks: which item do these captions (in en / de / fr / cs)
describe? This measures the cross-lingual half of C2KD on real text — not vision.

The dataset written (c2kd format, ``c2kd.data.dataset``):

- captions: task1 en/de/fr/cs, all at ``caption_index`` 0 (translations of each other);
- features: 4 frames per item (the four other descriptions, in task2 file order, L2-normalised), times 0..3 s;
- splits: ``train``, ``val``, ``test`` (= Multi30K ``test_2016_flickr``).

The task1 caption is removed from the five descriptions by exact match; when it is absent (never, in the
released data) the closest description by character similarity is removed instead; when it occurs twice
only one copy is removed, so every item has exactly four frames.

The data is found in ``$C2KD_DATA``, then ``../shared/data`` (beside the project, or the current folder), then a
previous download, and is downloaded from the public Multi30K repository when online (:func:`locate_multi30k`).
"""

from __future__ import annotations

import difflib
import gzip
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from c2kd.defaults import PROXY_FRAME_ENCODER
from c2kd.errors import DataError

#: c2kd split -> (task1 file stem, task2 file stem, task2 image list)
SPLITS: dict[str, tuple[str, str, str]] = {
    "train": ("train", "train", "train_images"),
    "val": ("val", "val", "val_images"),
    "test": ("test_2016_flickr", "test_2016", "test_2016_images"),
}
LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "cs")
DESCRIPTIONS = 5
FRAMES = DESCRIPTIONS - 1
#: raw files of the public Multi30K repository (``data/`` of github.com/multi30k/dataset)
DOWNLOAD_BASE = "https://raw.githubusercontent.com/multi30k/dataset/master/data"
DEFAULT_FRAME_ENCODER = PROXY_FRAME_ENCODER
PROXY_NOTE = (
    "PROXY benchmark: each item's 'video' is the sequence of its four other English descriptions (Multi30K task2), "
    "each encoded as one frame by a text encoder; it measures cross-lingual retrieval on real text, not vision."
)


def required_files() -> list[str]:
    """Paths (relative to a ``multi30k`` folder) that the proxy builder reads."""
    files = []
    for t1, t2, images in SPLITS.values():
        files.append(f"task1/image_splits/{t1}.txt")
        files += [f"task1/raw/{t1}.{lang}.gz" for lang in LANGUAGES]
        files.append(f"task2/image_splits/{images}.txt")
        files += [f"task2/raw/{t2}.{k}.en.gz" for k in range(1, DESCRIPTIONS + 1)]
    return files


def _is_multi30k(folder: Path) -> bool:
    return all((folder / f).exists() for f in required_files())


def default_download_dir() -> Path:
    """Where a downloaded copy is kept: ``$XDG_CACHE_HOME/c2kd/data/multi30k`` (``~/.cache`` by default)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "c2kd" / "data" / "multi30k"


def _project_root() -> Path:
    return Path(__file__).resolve().parents[3]  # src/c2kd/data/multi30k.py -> the repository root


@dataclass
class Located:
    """Where the Multi30K files were found, and a sentence saying so."""

    root: Path
    source: str
    message: str


def search_folders(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[tuple[str, Path]]:
    """Candidate ``multi30k`` folders, in order: ``$C2KD_DATA``, ``../shared/data`` (project, then current
    folder), a previous download."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    out: list[tuple[str, Path]] = []
    if env.get("C2KD_DATA"):
        base = Path(env["C2KD_DATA"]).expanduser()
        out += [("$C2KD_DATA", base / "multi30k"), ("$C2KD_DATA", base)]
    for base in (_project_root() / ".." / "shared" / "data", cwd / ".." / "shared" / "data",
                 cwd / "shared" / "data"):
        out.append(("../shared/data", (base / "multi30k").resolve()))
    out.append(("download cache", default_download_dir()))
    return out


def download_multi30k(dest: Path, timeout: float = 30.0, base_url: str = DOWNLOAD_BASE,
                      log: Callable[[str], None] = print) -> Path:
    """Download the files the builder needs from the public Multi30K repository into ``dest`` (resumable).

    Each file is written by rename, so an interrupted download resumes with the files still missing.
    Raises :class:`urllib.error.URLError` (or ``OSError``) when offline.
    """
    from c2kd.io import atomic_path
    from c2kd.progress import progress_bar

    missing = [f for f in required_files() if not (dest / f).exists()]
    for rel in progress_bar(missing, desc="downloading Multi30K", unit="file", disable=not missing):
        with urllib.request.urlopen(f"{base_url}/{rel}", timeout=timeout) as response:
            payload = response.read()
        with atomic_path(dest / rel) as tmp:
            tmp.write_bytes(payload)
    log(f"Multi30K: downloaded {len(missing)} file(s) from {base_url} to {dest}")
    return dest


def locate_multi30k(explicit: str | os.PathLike | None = None, download: bool = True,
                    env: Mapping[str, str] | None = None, cwd: Path | None = None,
                    download_dir: Path | None = None, timeout: float = 30.0) -> Located:
    """Find the Multi30K files (see :func:`search_folders`), else download them, else explain what to do."""
    if explicit is not None:
        folder = Path(explicit).expanduser()
        for candidate in (folder, folder / "multi30k"):
            if _is_multi30k(candidate):
                return Located(candidate, "given", f"Multi30K: using {candidate} (given on the command line)")
        raise DataError(
            f"{folder} does not hold the Multi30K files (e.g. {required_files()[1]}); point --data to a folder with "
            "task1/ and task2/ as in the public Multi30K repository"
        )
    looked = []
    for source, candidate in search_folders(env, cwd):
        if _is_multi30k(candidate):
            return Located(candidate, source, f"Multi30K: using {candidate} (found via {source})")
        looked.append(str(candidate))
    dest = download_dir or default_download_dir()
    if download:
        try:
            download_multi30k(dest, timeout=timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = f"downloading from {DOWNLOAD_BASE} failed ({exc})"
        else:
            return Located(dest, "download", f"Multi30K: using {dest} (downloaded from {DOWNLOAD_BASE})")
    else:
        reason = "downloading is switched off (--no-download)"
    raise DataError(
        "Multi30K was not found. Looked in: " + ", ".join(dict.fromkeys(looked)) + f"; {reason}. "
        "Fix: set C2KD_DATA to a folder holding multi30k/task1 and multi30k/task2 (the layout of "
        "github.com/multi30k/dataset's data/ folder), or run once with internet access so it is downloaded to "
        f"{dest}."
    )


# -- reading ---------------------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read ({exc}); re-download it or fix C2KD_DATA") from exc
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@dataclass
class ProxyItem:
    """One Multi30K image: its captions (task1) and the four other English descriptions (the proxy frames)."""

    item_id: str
    captions: dict[str, str]
    frames: list[str]
    removed_by: str = "exact"  # how the task1 caption was found among the descriptions: exact | closest
    descriptions: list[str] = field(default_factory=list)


def proxy_frames(caption: str, descriptions: Sequence[str]) -> tuple[list[str], str]:
    """The descriptions without (one copy of) ``caption``: exact match, else the closest by character similarity.

    Returns the kept descriptions in their original order and ``"exact"`` or ``"closest"``.
    """
    descriptions = list(descriptions)
    if caption in descriptions:
        drop, how = descriptions.index(caption), "exact"
    else:
        scores = [difflib.SequenceMatcher(None, caption.lower(), d.lower()).ratio() for d in descriptions]
        drop, how = int(np.argmax(scores)), "closest"
    return descriptions[:drop] + descriptions[drop + 1:], how


def read_split(root: str | os.PathLike, split: str, limit: int | None = None) -> list[ProxyItem]:
    """Read one split of Multi30K into proxy items (the first ``limit`` images when given)."""
    if split not in SPLITS:
        raise DataError(f"unknown Multi30K split {split!r}; choose from {list(SPLITS)}")
    root = Path(root)
    t1, t2, images_name = SPLITS[split]
    images = _read_lines(root / "task1" / "image_splits" / f"{t1}.txt")
    images2 = _read_lines(root / "task2" / "image_splits" / f"{images_name}.txt")
    n = len(images) if limit is None else min(limit, len(images))
    if images2[:n] != images[:n]:
        raise DataError(f"{root}: task1 and task2 list different images for split {split!r}; the files do not match")
    captions = {lang: _read_lines(root / "task1" / "raw" / f"{t1}.{lang}.gz") for lang in LANGUAGES}
    descriptions = [_read_lines(root / "task2" / "raw" / f"{t2}.{k}.en.gz") for k in range(1, DESCRIPTIONS + 1)]
    for name, lines in [*(((f"task1 {t1}.{lang}"), c) for lang, c in captions.items()),
                        *((f"task2 {t2}.{k + 1}.en", d) for k, d in enumerate(descriptions))]:
        if len(lines) < n:
            raise DataError(f"{root}: {name} has {len(lines)} lines but the split lists {len(images)} images")
    items = []
    for i in range(n):
        caps = {lang: captions[lang][i].strip() for lang in LANGUAGES}
        descs = [d[i].strip() for d in descriptions]
        frames, how = proxy_frames(caps["en"], descs)
        items.append(ProxyItem(Path(images[i]).stem, caps, frames, how, descs))
    return items


# -- building --------------------------------------------------------------------------------------------------
def encode_frames(backbone, texts: Sequence[str], batch_size: int = 256, max_tokens: int = 64,
                  progress: bool = True) -> np.ndarray:
    """Embed description texts with a text backbone as proxy frames, L2-normalised.

    Shape:
        texts: N strings -> [N, backbone.dim] float32, unit rows
    """
    import torch

    from c2kd.progress import progress_bar

    out = []
    with torch.no_grad():
        for start in progress_bar(range(0, len(texts), batch_size), desc=f"proxy frames ({backbone.name})",
                                  unit="batch", disable=not progress):
            inputs = backbone.prepare(list(texts[start:start + batch_size]), max_tokens)
            out.append(backbone(inputs).float().cpu().numpy())
    feats = np.concatenate(out) if out else np.zeros((0, backbone.dim), np.float32)
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


def build_multi30k_proxy(out: str | os.PathLike, source: str | os.PathLike, frame_encoder: str = DEFAULT_FRAME_ENCODER,
                         max_train: int | None = None, max_val: int | None = None, max_test: int | None = None,
                         batch_size: int = 256,
                         progress: bool = True, log: Callable[[str], None] = print, backbone=None,
                         processes: int = 1) -> Path:
    """Write the Multi30K proxy dataset to ``out`` (resumable: items already in the feature store are skipped).

    ``max_train`` / ``max_val`` / ``max_test`` keep the first N items of a split (for speed).
    ``backbone`` may pass an already loaded frame encoder (its ``name`` must equal ``frame_encoder``); a cached one
    (``CachedTextBackbone``) is first warmed with every description to encode, in ``processes`` processes.
    """
    from c2kd.data.dataset import save_dataset
    from c2kd.data.features import FeatureStoreWriter
    from c2kd.encoders.text.loading import build_text_backbone

    started = time.perf_counter()
    out = Path(out)
    limits = {"train": max_train, "val": max_val, "test": max_test}
    splits = {split: read_split(source, split, limits[split]) for split in SPLITS}
    ids = [it.item_id for items in splits.values() for it in items]
    if len(set(ids)) != len(ids):
        raise DataError(f"{source}: an image id occurs in two splits; the Multi30K files are inconsistent")
    closest = sum(it.removed_by == "closest" for items in splits.values() for it in items)
    if closest:
        log(f"Multi30K: in {closest} item(s) the task1 caption was not among the five descriptions; "
            "the closest description was dropped instead")

    if backbone is None:
        backbone = build_text_backbone(frame_encoder)
    elif backbone.name != frame_encoder:
        raise ValueError(f"backbone {backbone.name!r} given for frame encoder {frame_encoder!r}")
    writer = FeatureStoreWriter(out / "features", dim=backbone.dim, encoder=frame_encoder, fps=1.0,
                                flush_every=2048, extra={"proxy": PROXY_NOTE})
    todo = [it for items in splits.values() for it in items if it.item_id not in writer]
    if processes > 1 and hasattr(backbone, "warm"):
        backbone.warm([t for it in todo for t in it.frames], processes=processes)
    chunk = 2048  # items per step: each step is encoded and committed as one shard (resumable)
    with writer:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            texts = [t for it in part for t in it.frames]
            if len(todo) > chunk:
                log(f"Multi30K proxy: encoding items {start + 1}-{start + len(part)} of {len(todo)}")
            feats = encode_frames(backbone, texts, batch_size=batch_size, progress=progress).reshape(
                len(part), FRAMES, backbone.dim)
            for it, f in zip(part, feats):
                writer.add(it.item_id, f, times=[float(k) for k in range(FRAMES)])
            writer.flush()

    rows = [{"video_id": it.item_id, "split": split, "lang": lang, "caption_index": 0, "text": it.captions[lang]}
            for split, items in splits.items() for it in items for lang in LANGUAGES]
    save_dataset(out, rows, name="multi30k-proxy", proxy=True, note=PROXY_NOTE, frame_encoder=frame_encoder,
                 source=str(source), source_splits={k: v[0] for k, v in SPLITS.items()},
                 counts={split: len(items) for split, items in splits.items()},
                 limits=limits)
    log(f"Multi30K proxy: {', '.join(f'{s} {len(v)}' for s, v in splits.items())} items -> {out} "
        f"({len(todo)} encoded with {frame_encoder}, {time.perf_counter() - started:.0f} s)")
    return out
