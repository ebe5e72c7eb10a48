"""Embedding a feature store with the student's video tower into an index (build, resume, add).

``build_index`` writes into a staging folder beside the output (``.<name>.building``) one committed segment
per chunk of videos, so an interrupted build resumes where it stopped; the backend structure (e.g. a trained
faiss IVF over a sample of *all* videos) is made at the end, and the finished folder replaces the output in
one rename.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.data.features import store_root
from c2kd.errors import DataError
from c2kd.index import VideoIndex
from c2kd.index.segments import MANIFEST, VideoEntries, read_manifest, write_manifest, writer_lock
from c2kd.index.store import set_backend
from c2kd.io import check_output, output_errors, swap_in
from c2kd.options import key_value
from c2kd.reading import read_json, read_parquet
from c2kd.search.windows import Timeline, Windows

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v", ".ogv")


#: how many captions of a dataset item its index metadata keeps (shown with the item in search results)
CAPTIONS_KEPT = 3


def dataset_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """``dataset``, ``split`` and ``captions`` of each video when ``path`` is a dataset folder (else nothing).

    ``captions`` are the first :data:`CAPTIONS_KEPT` English captions of the item (those of its first language
    when it has no English one): what the item shows, for people reading search results.
    """
    path = Path(path)
    if not (path / "dataset.json").exists():
        return {}
    fix = "make the dataset again or restore it from a copy"
    name = read_json(path / "dataset.json", fix).get("name")
    table = read_parquet(path / "captions.parquet", fix, columns=["video_id", "split", "lang", "text"])
    table = table.select(["video_id", "split", "lang", "text"]).to_pydict()
    out: dict[str, dict[str, Any]] = {}
    texts: dict[str, dict[str, list[str]]] = {}
    for vid, split, lang, text in zip(table["video_id"], table["split"], table["lang"], table["text"]):
        out.setdefault(vid, {"dataset": name, "split": split})
        if isinstance(text, str) and text.strip():
            texts.setdefault(vid, {}).setdefault(lang, []).append(text.strip())
    for vid, by_lang in texts.items():
        chosen = by_lang.get("en") or next(iter(by_lang.values()))
        out[vid]["captions"] = chosen[:CAPTIONS_KEPT]
    return out


def split_ids(path: Path, splits: Sequence[str]) -> set[str]:
    """Ids of the videos of a dataset folder in any of ``splits`` (e.g. ``["test"]``)."""
    meta = dataset_metadata(path)
    if not meta:
        raise DataError(f"{path} is not a dataset folder (no dataset.json): --split needs one, e.g. the folder "
                        "written by `c2kd data synthetic` or `c2kd import-data`")
    present = sorted({str(m["split"]) for m in meta.values()})
    unknown = [s for s in splits if s not in present]
    if unknown:
        raise DataError(f"{path} has no split {unknown[0]!r}; its splits are: {', '.join(present)}")
    wanted = set(splits)
    return {vid for vid, m in meta.items() if m["split"] in wanted}


def read_metadata_file(path: str | os.PathLike, id_column: str = "video_id") -> dict[str, dict[str, Any]]:
    """Per-video metadata from JSON lines, CSV or parquet: ``id_column`` names the video (MSR-VTT's files say
    ``clip_name``, others ``video_id``), the other columns are its fields."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"metadata file {path} not found")
    if not path.is_file():
        raise DataError(f"metadata file {path} is a folder; give a JSON lines, CSV or parquet file")
    fix = "give a JSON lines, CSV or parquet file of one row per video (saved as UTF-8)"
    if path.suffix == ".parquet":
        rows = read_parquet(path, fix).to_pylist()
    elif path.suffix == ".csv":
        import csv

        try:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"metadata file {path} cannot be read as CSV ({exc}); {fix}") from None
    else:
        rows = []
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"metadata file {path} is not UTF-8 text ({exc}); {fix}") from None
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not JSON ({exc}); write one object per line") from None
    out = {}
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or id_column not in row:
            has = ", ".join(repr(k) for k in row) if isinstance(row, dict) else "none (not an object)"
            raise DataError(f"{path}: row {number} has no {id_column!r} field (its fields: {has}); name the column "
                            f"that holds the video id with --id-column, e.g. --id-column clip_name")
        out[str(row[id_column])] = {k: v for k, v in row.items() if k != id_column}
    return out


def parse_tags(items: Sequence[str]) -> dict[str, Any]:
    """``["cooking", "source=youtube"]`` -> ``{"tags": ["cooking"], "source": "youtube"}``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" in item:
            key, value = key_value(item, "--tag", "a word or key=value, e.g. source=youtube")
            out[key] = value
        elif item.strip():
            out.setdefault("tags", []).append(item.strip())
    return out


def merge_metadata(base: Mapping[str, dict[str, Any]], override: Mapping[str, dict[str, Any]]
                   ) -> dict[str, dict[str, Any]]:
    """Per-video metadata of ``base`` updated field by field with ``override``."""
    return {vid: {**base.get(vid, {}), **override.get(vid, {})} for vid in {*base, *override}}


def find_video_files(roots: Sequence[Path], ids: Sequence[str]) -> dict[str, str]:
    """Video files named ``<id>.<ext>`` under the roots -> path relative to its root (served by `c2kd serve`)."""
    wanted = set(ids)
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.suffix.lower() in VIDEO_EXTENSIONS and path.stem in wanted and path.stem not in found:
                found[path.stem] = path.relative_to(root).as_posix()
    return found


def _video_rows(store, ids: Sequence[str], extra: Mapping[str, dict[str, Any]], common: Mapping[str, Any],
                videos: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    for vid in ids:
        timeline = Timeline.of_video(store, vid)
        row: dict[str, Any] = {"frames": len(timeline), "duration": round(timeline.duration, 3)}
        row.update(common)
        row.update(extra.get(vid, {}))
        if vid in videos:
            row.setdefault("video", videos[vid])
        rows.append(row)
    return rows


#: entries embedded per committed segment of a build (a chunk also ends after ``chunk`` videos)
ENTRIES_PER_CHUNK = 16_384


def embed_entries(model, store, ids: Sequence[str], windows: Windows, chunk: int, batch_size: int,
                  progress: bool = True) -> Iterator[tuple[list[str], list[VideoEntries]]]:
    """Embed videos of a store with the video tower: a whole clip each, or, for a video the windows cut
    (longer than ``windows.whole_up_to`` and the longest window), one entry per window. Yields about :data:`ENTRIES_PER_CHUNK` entries (at most ``chunk``
    videos) at a time; the bar shows videos and entries per second.

    Shape:
        yields (ids: n strings, entries: n VideoEntries of [n_i, E] vectors and [n_i] spans in seconds)
    """
    from c2kd.progress import progress_bar

    bar = progress_bar(total=len(ids), desc="embedding videos", unit="video", disable=not progress)
    done, started = 0, time.perf_counter()
    try:
        pending: list[tuple[str, np.ndarray, float, list[tuple[int, int, float, float]] | None]] = []
        size = 0
        for number, vid in enumerate(ids, start=1):
            timeline = Timeline.of_video(store, vid)
            spans = windows.spans(timeline)
            pending.append((vid, store[vid], timeline.duration, spans))
            size += 1 if spans is None else len(spans)
            if size >= ENTRIES_PER_CHUNK or len(pending) >= chunk or number == len(ids):
                part, entries = _embed_pending(model, pending, batch_size)
                done += size
                bar.update(len(part))
                bar.set_postfix(entries=done, per_s=f"{done / max(time.perf_counter() - started, 1e-9):.0f}")
                pending, size = [], 0
                yield part, entries
    finally:
        bar.close()


def _embed_pending(model, pending, batch_size: int) -> tuple[list[str], list[VideoEntries]]:
    clips = []
    for _, features, _, spans in pending:
        clips.extend([features] if spans is None else [features[i:j] for i, j, _, _ in spans])
    order = np.argsort([len(c) for c in clips], kind="stable")  # similar lengths share a batch: less padding
    vectors = np.empty((len(clips), model.embed_dim), np.float32)
    if len(clips):
        vectors[order] = model.embed_videos([clips[i] for i in order], batch_size=batch_size).numpy()
    out, first = [], 0
    for _, _, duration, spans in pending:
        if spans is None:
            out.append(VideoEntries.clip(vectors[first], duration))
            first += 1
        else:
            n = len(spans)
            out.append(VideoEntries(vectors[first:first + n], np.asarray([s[2] for s in spans], np.float32),
                                    np.asarray([s[3] for s in spans], np.float32)))
            first += n
    return [vid for vid, _, _, _ in pending], out


def _posters(root: Path, index: VideoIndex, videos: Mapping[str, str], roots: Sequence[Path]) -> None:
    """Still frames of the indexed videos that have a file (kept beside the index, served with results)."""
    from c2kd.search.posters import make_posters

    present = {v: rel for v, rel in videos.items() if v in index}
    # the build writes a number of seconds (a --metadata file may override it: that value is not checked yet)
    durations = {v: float(index.metadata(v).get("duration") or 0.0) for v in present}  # type: ignore[arg-type]
    make_posters(root, present, roots, durations)


def build_index(checkpoint: str | os.PathLike, features: str | os.PathLike, out: str | os.PathLike,
                backend: str = "exact", options: Mapping[str, Any] | None = None,
                metadata: Mapping[str, dict[str, Any]] | None = None, tags: Mapping[str, Any] | None = None,
                video_roots: Sequence[str | os.PathLike] = (), ids: Sequence[str] | None = None,
                batch_size: int = 256, chunk: int = 4096, device: str = "cpu", progress: bool = True,
                splits: Sequence[str] = (), posters: bool = True, windows: Windows | None = None,
                dtype: str = "float32", overwrite: bool = False) -> Path:
    """Embed every video of ``features`` (a store or a dataset folder) and write an index to ``out``.

    A video longer than ``windows.whole_up_to`` seconds and than its longest window (default
    :class:`~c2kd.search.windows.Windows`: the lengths and stride of :mod:`c2kd.defaults`) is indexed as one
    entry per window; shorter ones (dataset clips) as one whole-clip entry.
    ``dtype`` is how the vectors are stored (float16 halves the disk and page cache).

    One build (or change) of ``out`` at a time: while this runs, other builds and ``index add``/``remove`` of
    ``out`` are refused with this process's pid (:class:`~c2kd.errors.BusyError`). ``splits`` keeps only the videos
    of these splits of a dataset folder; ``posters`` takes still frames of the videos that have a file under
    ``video_roots`` (see :mod:`c2kd.search.posters`).

    ``out`` replaces only an index (or an empty folder), unless ``overwrite``; it may not be, hold or lie inside
    ``checkpoint`` or ``features`` (:class:`~c2kd.errors.OutputExistsError`, before any work).
    """
    from c2kd.data.features import FeatureStore
    from c2kd.formats import resolve_checkpoint
    from c2kd.search.extracting import check_store_encoder
    from c2kd.search.model import load_search_model

    out = check_output(out, MANIFEST, inputs=(checkpoint, features), overwrite=overwrite)
    # a full disk or read-only folder is reported naming `out` (or the lock beside it), not the staging folder
    with output_errors(out), writer_lock(out, "a build of this index"):
        checkpoint = resolve_checkpoint(checkpoint).resolve()
        root = store_root(Path(features))
        store = FeatureStore(root)
        wanted = list(ids) if ids is not None else store.ids
        missing = [v for v in wanted if v not in store]
        if missing:
            raise DataError(f"{len(missing)} requested video(s) have no features in {root} (e.g. {missing[0]!r})")
        if splits:
            keep = split_ids(Path(features), splits)
            wanted = [v for v in wanted if v in keep]
            if not wanted:
                raise DataError(f"no video of {root} is in the split(s) {', '.join(splits)}")
        if not wanted:
            raise DataError(f"{root} holds no videos; extract some first with `c2kd extract`")
        model = load_search_model(checkpoint, device)
        check_store_encoder(model, store, checkpoint)
        info: dict[str, Any] = {"checkpoint": str(checkpoint), "checkpoint_fingerprint": model.fingerprint(),
                "features": str(Path(features).resolve()), "frame_encoder": store.meta.get("encoder"),
                "frames": "text" if store.meta.get("proxy") else "video",  # sentences as frames: no pictures
                "video_roots": [str(Path(r).resolve()) for r in video_roots],
                "moments": (windows if windows is not None else Windows()).to_dict(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        extra = merge_metadata(dataset_metadata(Path(features)), metadata or {})
        videos = find_video_files([Path(r) for r in video_roots], wanted) if video_roots else {}

        staging = out.with_name(f".{out.name}.building")
        index = _open_staging(staging, info, model.embed_dim, dtype)
        todo = [v for v in wanted if v not in index]
        for part, entries in embed_entries(model, store, todo, Windows.from_dict(info["moments"]), chunk,
                                           batch_size, progress):
            index.add_entries(part, entries, _video_rows(store, part, extra, dict(tags or {}), videos))
        if posters and videos:
            _posters(staging, index, videos, [Path(r) for r in video_roots])
        index.close()

        manifest = read_manifest(staging)
        manifest["info"] = {**info, "created": manifest["info"].get("created", info["created"])}
        write_manifest(staging, manifest)
        set_backend(staging, backend, options)
        swap_in(staging, out, MANIFEST, overwrite)
    return out


def _open_staging(staging: Path, info: Mapping[str, Any], dim: int, dtype: str) -> VideoIndex:
    """The staged index of an interrupted build with the same weights, to resume; else a new one.

    A staging folder that cannot be read (e.g. files missing after a crash) holds nothing worth keeping: it
    is deleted and the build starts over.
    """
    if (staging / MANIFEST).exists():
        try:
            staged = read_manifest(staging)
            same = all(staged["info"].get(key) == info[key] for key in ("checkpoint_fingerprint", "moments"))
            if same and staged.get("dtype", "float32") == dtype:
                return VideoIndex.open(staging)
        except (DataError, ValueError, KeyError, OSError):
            pass  # damaged: start over
        shutil.rmtree(staging)  # another build's weights or windows, or damaged: nothing to resume
    return VideoIndex.create(staging, dim=dim, backend="exact", info=info, dtype=dtype)


def add_to_index(index_path: str | os.PathLike, features: str | os.PathLike | None = None,
                 ids: Sequence[str] | None = None, replace: bool = False, checkpoint: str | os.PathLike | None = None,
                 metadata: Mapping[str, dict[str, Any]] | None = None, tags: Mapping[str, Any] | None = None,
                 batch_size: int = 256, device: str = "cpu", progress: bool = True) -> int:
    """Embed and add videos of a store that the index lacks (or ``ids``; ``replace`` re-embeds existing ones).

    Holds the index's lock throughout: a build or another change of the index meanwhile is refused.
    """
    from c2kd.data.features import FeatureStore
    from c2kd.search.extracting import check_store_encoder
    from c2kd.search.model import check_fingerprint, load_search_model, recorded

    index = VideoIndex.open(index_path)
    try:
        with index.writing("an `index add` of this index"):
                info = index.info
                checkpoint = recorded(checkpoint, info, "checkpoint", index_path)
                check_fingerprint(info, checkpoint, index.root)
                features = Path(recorded(features, info, "features", index_path))
                store = FeatureStore(store_root(features))
                wanted = list(ids) if ids is not None else [v for v in store.ids if v not in index]
                missing = [v for v in wanted if v not in store]
                if missing:
                    raise DataError(f"{len(missing)} video(s) have no features in {store.root} (e.g. {missing[0]!r})")
                if not replace:
                    present = [v for v in wanted if v in index]
                    if present:
                        raise DataError(f"{len(present)} video(s) are already in {index.root} (e.g. {present[0]!r}); "
                                        "pass --replace to re-embed them")
                model = load_search_model(checkpoint, device)
                check_store_encoder(model, store, checkpoint)  # even when nothing is new: a wrong store is named
                if not wanted:
                    return 0
                roots = [Path(r) for r in info.get("video_roots", [])]
                videos = find_video_files(roots, wanted) if roots else {}
                extra = merge_metadata(dataset_metadata(features), metadata or {})
                added = 0
                windows = Windows.from_dict(info.get("moments"))
                for part, entries in embed_entries(model, store, wanted, windows, 4096, batch_size, progress):
                    added += index.add_entries(part, entries,
                                               _video_rows(store, part, extra, dict(tags or {}), videos),
                                               replace=replace)
                if videos:
                    if replace:
                        from c2kd.search.posters import remove_posters

                        remove_posters(index.root, list(videos))
                    _posters(index.root, index, videos, roots)
                return added
    finally:
        index.close()
