"""Feature stores side by side: the frames a fused model reads when its members read different frame encoders.

``concat_features([A, B], OUT)`` writes, for every video, ``[A[v] | B[v]]`` (``[T, D_A + D_B]``) into a new store
whose ``store.json`` records the ``concat`` frame encoder with both parts. Inputs may be feature stores or
dataset folders; when they are all dataset folders, OUT is a dataset folder with the first one's captions
(the others' must be the same file). Rerunning the command after an interruption adds the missing videos.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from c2kd.data.dataset import CAPTIONS_FILE, DATASET_FILE
from c2kd.data.features import STORE_FILE, FeatureStore, FeatureStoreWriter, store_root
from c2kd.encoders.frames import CONCAT, FrameEncoderSpec, describe_parts, joined, store_frame_encoder
from c2kd.errors import DataError


def _store_parts(store: FeatureStore) -> list[FrameEncoderSpec]:
    parts = store_frame_encoder(store.meta)
    if not parts:
        raise DataError(f"{store.root / STORE_FILE} records no frame encoder, so the joined store could not say "
                        "which features it holds: extract it again with `c2kd extract`")
    return parts


def concat_features(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, progress: bool = True) -> Path:
    """Join the frame features of ``inputs`` (stores or dataset folders) video by video into ``out``.

    Every input must hold the same videos with the same number of frames each (refused otherwise, naming the
    first difference). Timestamps come from the first input.
    """
    from c2kd.progress import progress_bar

    if len(inputs) < 2:
        raise DataError(f"give at least two feature stores or dataset folders to join, got {len(inputs)}")
    paths = [Path(p) for p in inputs]
    datasets = [(p / DATASET_FILE).exists() for p in paths]
    if any(datasets) and not all(datasets):
        raise DataError("give only feature stores or only dataset folders: "
                        + ", ".join(f"{p} is a {'dataset' if d else 'feature store'}" for p, d in zip(paths, datasets,
                                                                                                 strict=True)))
    out = Path(out)
    stores = [FeatureStore(store_root(p)) for p in paths]
    parts = [part for store in stores for part in _store_parts(store)]
    if all(datasets):
        for p in paths[1:]:
            if not filecmp.cmp(p / CAPTIONS_FILE, paths[0] / CAPTIONS_FILE, shallow=False):
                raise DataError(f"{p / CAPTIONS_FILE} differs from {paths[0] / CAPTIONS_FILE}: the joined dataset "
                                "keeps one captions file, so build every input from the same captions")
    ids = stores[0].ids
    for store in stores[1:]:
        missing, extra = set(ids) - set(store.ids), set(store.ids) - set(ids)
        if missing or extra:
            example = sorted(missing or extra)[:3]
            raise DataError(f"{store.root} and {stores[0].root} hold different videos ({len(missing)} missing, "
                            f"{len(extra)} extra, e.g. {example}): extract the same videos into every store")
    spec = joined(parts)
    assert spec is not None and spec.name == CONCAT
    target = out / "features" if all(datasets) else out
    if (target / STORE_FILE).exists():
        found = store_frame_encoder(FeatureStore(target).meta)
        if found != parts:
            raise DataError(f"{target} already holds other features ({describe_parts(found) if found else 'unknown'}"
                            "); give another --out folder")
    with FeatureStoreWriter(target, spec.dim, encoder=CONCAT, fps=stores[0].meta.get("fps"),
                            extra={"extractor": {"parts": spec.options["parts"]}}) as writer:
        todo = [v for v in ids if v not in writer]
        for video_id in progress_bar(todo, desc="joining features", unit="video", disable=not progress):
            frames = [store[video_id] for store in stores]
            lengths = {len(f) for f in frames}
            if len(lengths) != 1:
                raise DataError(f"video {video_id!r} has {[len(f) for f in frames]} frames in "
                                f"{[str(s.root) for s in stores]}: extract every store at the same fps")
            writer.add(video_id, np.concatenate(frames, axis=1), times=stores[0].times(video_id),
                       duration=stores[0].duration(video_id))
    if all(datasets):
        _write_dataset_files(paths[0], out)
    return out


def _write_dataset_files(source: Path, out: Path) -> None:
    """The captions and dataset.json of ``source`` beside the joined features (dataset.json last)."""
    import json

    from c2kd.io import write_atomic, write_json

    write_atomic(out / CAPTIONS_FILE, lambda tmp: shutil.copyfile(source / CAPTIONS_FILE, tmp))
    meta = json.loads((source / DATASET_FILE).read_text())
    write_json(out / DATASET_FILE, {**meta, "features": "features", "frame_encoder": CONCAT})
