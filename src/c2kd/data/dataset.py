"""The canonical on-disk dataset: captions in any number of languages + a frame-feature store, with splits.

Layout of a dataset directory::

    dataset.json        {"format": "c2kd-dataset", "name": ..., "languages": [...], "features": "features"}
    captions.parquet    video_id, split, lang, caption_index, text
    features/           a FeatureStore (see c2kd.data.features)

Captions of one video in different languages are translations of each other when they share
``caption_index`` (as in Multi-MSRVTT and Multi-YouCook2). Videos of an evaluation split that have captions
but no features are kept as *missing*: evaluation counts them as misses (the MSR-VTT 968-of-1000 protocol).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from c2kd.data.batching import pad_frames
from c2kd.data.features import DATASET_FILE, FeatureStore
from c2kd.errors import DataError
from c2kd.io import write_atomic, write_json
from c2kd.languages import ENGLISH, normalize_language
from c2kd.reading import damaged, read_json

CAPTIONS_FILE = "captions.parquet"
CAPTION_COLUMNS = ("video_id", "split", "lang", "caption_index", "text")

log = logging.getLogger(__name__)


def save_dataset(root: str | os.PathLike, captions: Mapping[str, Sequence] | Iterable[Mapping], name: str,
                 features: str = "features", **extra) -> Path:
    """Write ``dataset.json`` and ``captions.parquet`` atomically (the feature store is written separately).

    ``captions`` is either a mapping of the five columns or an iterable of row dicts; language codes are
    normalised (``cz`` -> ``cs``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(captions, Mapping):
        rows = list(captions)
        captions = {c: [r[c] for r in rows] for c in CAPTION_COLUMNS}
    missing = [c for c in CAPTION_COLUMNS if c not in captions]
    if missing:
        raise DataError(f"captions lack column(s) {missing}; need {CAPTION_COLUMNS}")
    langs = [normalize_language(x) for x in captions["lang"]]
    _check_no_null_text({**captions, "lang": langs}, Path(root) / CAPTIONS_FILE)
    table = pa.table({
        "video_id": pa.array([str(v) for v in captions["video_id"]], pa.string()),
        "split": pa.array([str(s) for s in captions["split"]], pa.string()),
        "lang": pa.array(langs, pa.string()),
        "caption_index": pa.array([int(i) for i in captions["caption_index"]], pa.int32()),
        "text": pa.array([str(t) for t in captions["text"]], pa.string()),
    })
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / CAPTIONS_FILE, lambda p: pq.write_table(table, p))
    languages = sorted(set(langs), key=lambda c: (c != ENGLISH, c))
    write_json(root / DATASET_FILE, {"format": "c2kd-dataset", "version": 1, "name": name,
                                     "languages": languages, "features": features, **extra})
    return root


@dataclass
class SplitData:
    """One split, in memory: the videos that have features, their aligned captions, and what is missing.

    ``captions[lang][i]`` lists the captions of ``video_ids[i]`` in ``lang``, indexed by caption index
    (``None`` where a translation is absent).
    """

    name: str
    video_ids: list[str]
    captions: dict[str, list[list[str | None]]]
    features: FeatureStore
    missing_video_ids: list[str] = field(default_factory=list)
    missing_captions: dict[str, int] = field(default_factory=dict)
    #: captions of the split left out because their text is null or blank
    blank_captions: int = 0

    @property
    def languages(self) -> list[str]:
        return list(self.captions)

    def __len__(self) -> int:
        return len(self.video_ids)

    def frames(self, index: int) -> np.ndarray:
        return self.features[self.video_ids[index]]

    def shared_caption_indices(self, index: int, languages: Sequence[str]) -> list[int]:
        """Caption indices of video ``index`` that exist in every one of ``languages``."""
        sets = [{k for k, c in enumerate(self.captions[lang][index]) if c is not None} for lang in languages]
        return sorted(set.intersection(*sets)) if sets else []


def _normalised(codes: Sequence[str], where: Path) -> list[str]:
    """Registry codes for ``codes`` (each distinct code normalised once); an unknown one names the file."""
    from c2kd.errors import UnknownLanguageError

    mapping = {}
    for code in dict.fromkeys(codes):
        try:
            mapping[code] = normalize_language(code)
        except UnknownLanguageError as exc:
            raise DataError(f"{where}: {exc}") from exc
    return [mapping[c] for c in codes]


def _check_no_null_text(table: Mapping[str, Sequence], where: Path) -> None:
    """Refuse captions whose text is null (None)."""
    bad = [i for i, text in enumerate(table["text"]) if text is None]
    if bad:
        i = bad[0]
        raise DataError(
            f"{where}: {len(bad)} caption(s) have no text, e.g. video {table['video_id'][i]!r} (split "
            f"{table['split'][i]!r}, language {table['lang'][i]!r}, caption {table['caption_index'][i]}); "
            "fill in their text or remove those rows"
        )


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


#: how a damaged dataset file is repaired
REBUILD = "make the dataset again (`c2kd data synthetic`, `c2kd import-data`, ...) or restore it from a copy"


class VideoTextDataset:
    """A dataset directory, opened and validated. Use :meth:`split` to get the data of one split."""

    def __init__(self, root: str | os.PathLike, problems: list[str] | None = None):
        """Open the dataset at ``root``; with a ``problems`` list, damaged feature shards are described there
        and left out instead of raised (see :class:`FeatureStore`)."""
        self.root = Path(root)
        meta_path = self.root / DATASET_FILE
        if not meta_path.exists():
            raise DataError(
                f"{meta_path} not found: {self.root} is not a c2kd dataset. Make one with "
                "`c2kd data synthetic`, `c2kd multi30k-proxy` or `c2kd import-data`."
            )
        self.meta = read_json(meta_path, REBUILD)
        self.name: str = str(self.meta.get("name", self.root.name))
        # codes are normalised when read, whoever wrote the files (the original release's `cz` is `cs` here)
        languages = self.meta.get("languages", [])
        if not isinstance(languages, list) or not all(isinstance(code, str) for code in languages):
            raise damaged(meta_path, f"its 'languages' is {languages!r:.60}, not a list of codes", REBUILD)
        self.languages: list[str] = list(dict.fromkeys(_normalised(languages, meta_path)))
        captions_path = self.root / CAPTIONS_FILE
        if not captions_path.exists():
            raise DataError(f"{captions_path} not found; the dataset folder is incomplete")
        import pyarrow.parquet as pq

        try:
            self._table = pq.read_table(captions_path).to_pydict()
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{captions_path} is damaged (not a parquet table: {exc}); {REBUILD}") from exc
        absent = [c for c in CAPTION_COLUMNS if c not in self._table]
        if absent:
            raise DataError(f"{captions_path} lacks column(s) {absent}")
        if not self._table["video_id"]:
            raise DataError(f"{captions_path} holds no captions; rebuild the dataset with its captions")
        self._table["lang"] = _normalised(self._table["lang"], captions_path)
        features = self.meta.get("features")
        self.features = FeatureStore(self.root / (features if isinstance(features, str) and features else "features"),
                                     problems)

    @property
    def splits(self) -> list[str]:
        return sorted(set(self._table["split"]))

    def check_trainable(self, train_split: str = "train", val_split: str | None = "val") -> None:
        """Raise the :class:`DataError` that training on these splits in every language would meet, if any."""
        self.split(train_split, training=True)
        if val_split is not None and val_split not in self.splits:
            raise DataError(
                f"{self.root}: no split {val_split!r} to validate on (the dataset has {self.splits}); add one, or "
                "train with data.val_split=null"
            )

    def split(self, name: str, languages: Sequence[str] | None = None, training: bool = False,
              validate_features: bool = True) -> SplitData:
        """Load one split for ``languages`` (default: all of the dataset's).

        ``training=True`` requires features for every video and every language for every video; evaluation
        splits keep videos without features as missing (counted as misses).
        """
        if name not in self.splits:
            raise DataError(f"{self.root}: no split {name!r}; the dataset has {self.splits}")
        langs = [normalize_language(x) for x in (languages or self.languages)]
        per_video: dict[str, dict[str, dict[int, str]]] = defaultdict(lambda: defaultdict(dict))
        order: list[str] = []
        t = self._table
        blank = 0
        for vid, split, lang, idx, text in zip(t["video_id"], t["split"], t["lang"], t["caption_index"], t["text"]):
            if split != name:
                continue
            if vid not in per_video:
                order.append(vid)
                per_video[vid] = defaultdict(dict)
            if lang in langs:
                if _is_blank(text):  # null or only spaces: as if the caption were absent, never a text to read
                    blank += 1
                    continue
                per_video[vid][lang][int(idx)] = text
        if blank:
            log.warning("%s: %d caption(s) of split %r have no text (null or blank); they are left out",
                        self.root / CAPTIONS_FILE, blank, name)
        present_langs = {lang for v in per_video.values() for lang in v}
        absent = [lang for lang in langs if lang not in present_langs]
        if absent:
            raise DataError(
                f"{self.root / CAPTIONS_FILE}: split {name!r} has no captions in {absent}; it has "
                f"{sorted(present_langs) or 'none of the requested languages'}. Choose languages with --languages."
            )
        video_ids = [v for v in order if v in self.features]
        missing = [v for v in order if v not in self.features]
        if training and missing:
            raise DataError(
                f"{self.root}: {len(missing)} training video(s) of split {name!r} have no features in "
                f"{self.features.root}, e.g. {missing[:3]}. Extract them (`c2kd extract`) or remove their captions."
            )
        if validate_features:
            self.features.validate(video_ids)
        captions: dict[str, list[list[str | None]]] = {}
        for lang in langs:
            rows = []
            for vid in video_ids:
                caps = per_video[vid].get(lang, {})
                if training and not caps:
                    raise DataError(
                        f"{self.root / CAPTIONS_FILE}: video {vid!r} (split {name!r}) has no {lang!r} caption. "
                        f"Add it, or train on fewer languages with --languages."
                    )
                size = max(caps) + 1 if caps else 0
                rows.append([caps.get(k) for k in range(size)])
            captions[lang] = rows
        # A missing video is at least one query missed in every language, even where a release lacks its
        # translations (the MSR-VTT 1k-A protocol: 32 misses in each of the 9 languages).
        missing_captions = {lang: sum(max(1, len(per_video[v].get(lang, {}))) for v in missing) for lang in langs}
        data = SplitData(name, video_ids, captions, self.features, missing, missing_captions, blank)
        if training:
            for i, vid in enumerate(video_ids):
                if not data.shared_caption_indices(i, langs):
                    raise DataError(
                        f"{self.root / CAPTIONS_FILE}: video {vid!r} has no caption index shared by all of {langs}; "
                        "translations must share caption_index."
                    )
        return data


@dataclass
class Batch:
    """A training batch of B videos, each with one caption (same caption index) in every language.

    Shape:
        frames [B, T, F], mask [B, T], texts: lang -> B strings, video_index [B], caption_index [B]
    """

    frames: Tensor
    mask: Tensor
    texts: dict[str, list[str]]
    video_index: Tensor
    caption_index: Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.frames.to(device, non_blocking=True), self.mask.to(device, non_blocking=True),
                     self.texts, self.video_index, self.caption_index)

    def __len__(self) -> int:
        return len(self.video_index)


class TrainingPairs(torch.utils.data.Dataset):
    """Items for training: a video's frames and one caption index, read in every training language.

    The caption index is drawn anew each epoch (call :meth:`set_epoch`), deterministically from the seed, so a
    resumed run sees the same data as an uninterrupted one.
    """

    def __init__(self, split: SplitData, languages: Sequence[str], max_frames: int = 30, seed: int = 0):
        self.split = split
        self.languages = list(languages)
        self.max_frames = max_frames
        self.seed = seed
        self.epoch = 0
        self._choices = [split.shared_caption_indices(i, self.languages) for i in range(len(split))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict:
        choices = self._choices[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        k = int(choices[rng.integers(len(choices))])
        return {
            "frames": self.split.frames(index),
            "texts": {lang: self.split.captions[lang][index][k] for lang in self.languages},
            "video_index": index,
            "caption_index": k,
        }

    def collate(self, items: list[dict]) -> Batch:
        frames, mask = pad_frames([it["frames"] for it in items], self.max_frames)
        return Batch(
            frames=frames,
            mask=mask,
            texts={lang: [it["texts"][lang] for it in items] for lang in self.languages},
            video_index=torch.tensor([it["video_index"] for it in items], dtype=torch.long),
            caption_index=torch.tensor([it["caption_index"] for it in items], dtype=torch.long),
        )
