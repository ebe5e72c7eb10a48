"""Import the authors' released split files (pickled lists of dicts) into a c2kd dataset directory.

Pipeline: read + validate every split file (nothing is written if one is bad) -> write the features into a
:class:`~c2kd.data.features.FeatureStoreWriter` (resumable: videos already in the store are skipped) -> write
``captions.parquet`` and ``dataset.json`` with :func:`~c2kd.data.dataset.save_dataset` (atomic) and an
``import_report.json`` beside them.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.data.importers.layouts import DatasetLayout
from c2kd.data.importers.safe_pickle import load_pickle
from c2kd.data.importers.split_list import SplitListing, read_split_listing
from c2kd.errors import DataError, UnknownLanguageError
from c2kd.io import write_json
from c2kd.languages import normalize_languages

REPORT_FILE = "import_report.json"


@dataclass
class SplitReport:
    """What one split file held and what was imported from it."""

    split: str
    file: str
    items: int = 0
    videos_with_features: int = 0
    missing_videos: int = 0
    captions: dict[str, int] = field(default_factory=dict)
    source_codes: dict[str, str] = field(default_factory=dict)
    skipped_empty_captions: int = 0
    unequal_caption_counts: int = 0
    listing_caption_mismatches: int = 0
    ignored_keys: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """Summary of an import; ``missing_videos`` per split is what evaluation counts as misses."""

    dataset: str
    format: str
    features: str
    feature_dim: int
    splits: dict[str, SplitReport]
    reused_videos: int = 0

    @property
    def missing_videos(self) -> dict[str, int]:
        return {name: s.missing_videos for name, s in self.splits.items()}

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "format": self.format,
            "features": self.features,
            "feature_dim": self.feature_dim,
            "reused_videos": self.reused_videos,
            "splits": {k: asdict(v) for k, v in self.splits.items()},
        }

    def markdown(self) -> str:
        """One row per split: videos, missing videos and captions per language."""
        langs = sorted(
            {lang for s in self.splits.values() for lang in s.captions}, key=lambda c: (c != "en", c)
        )
        head = ["split", "file", "videos", "missing", *[f"captions {lang}" for lang in langs]]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for s in self.splits.values():
            cells = [
                s.split,
                Path(s.file).name,
                str(s.videos_with_features),
                str(s.missing_videos),
                *[str(s.captions.get(lang, 0)) for lang in langs],
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


@dataclass
class _ParsedSplit:
    name: str
    path: Path
    video_ids: list[str]  # in file order, with features
    rows: list[tuple[str, str, int, str]]  # video_id, lang, caption_index, text
    hashes: dict[str, str]
    report: SplitReport


def _features_hash(feats: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(feats, np.float16).tobytes(), digest_size=16).hexdigest()


def _caption_list(value: Any, where: str) -> list[str | None]:
    """A caption value as a list (one string -> one caption); entries that are None stay None."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        out: list[str | None] = []
        for k, text in enumerate(value):
            if text is None or isinstance(text, str):
                out.append(text)
            else:
                raise DataError(f"{where}: caption {k} is a {type(text).__name__}, expected a string")
        return out
    raise DataError(f"{where}: captions must be a string or a list of strings, got {type(value).__name__}")


def _check_features(value: Any, where: str, dim: int | None) -> np.ndarray:
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
        raise DataError(f"{where}: features must be a numeric numpy array, got {type(value).__name__}")
    if value.ndim != 2 or len(value) == 0:
        raise DataError(f"{where}: features of shape {value.shape}; expected [T, D] with T >= 1 frames")
    if dim is not None and value.shape[1] != dim:
        raise DataError(
            f"{where}: {value.shape[1]}-d features, but earlier items are {dim}-d; "
            "one store holds one feature type (check --features)"
        )
    finite = np.isfinite(value)
    if not finite.all():
        bad = int((~finite).any(axis=1).sum())
        raise DataError(
            f"{where}: NaN or inf in {bad} of {len(value)} frames; re-extract this video's features "
            "or remove the item from the file"
        )
    return value


class ReleaseImporter:
    """Import split files laid out as ``layout`` into ``out``.

    Args:
        layout: the dataset's :class:`DatasetLayout`.
        feature_type: ``"2d"`` (CLIP) or ``"3d"`` (S3D); picks the item key via ``layout.feature_keys``.
        languages: languages to import (default: the layout's); every item must have captions in each.
        listings: split name -> CSV listing every video of that split (adds the ones without features as
            missing, with their English caption from the CSV).
    """

    def __init__(
        self,
        layout: DatasetLayout,
        feature_type: str,
        languages: Sequence[str] | None = None,
        listings: Mapping[str, str | os.PathLike] | None = None,
        progress: bool = True,
    ):
        if feature_type not in layout.feature_keys:
            raise DataError(
                f"--features {feature_type!r} is not available for {layout.name}; "
                f"choose one of {sorted(layout.feature_keys)}"
            )
        self.layout = layout
        self.feature_type = feature_type
        self.feature_key = layout.feature_keys[feature_type]
        self.languages = normalize_languages(languages or layout.languages)
        self.listings: dict[str, SplitListing] = {
            k: read_split_listing(v) for k, v in (listings or {}).items()
        }
        self.progress = progress
        self.dim: int | None = None

    # ---- reading -------------------------------------------------------------------------------------------
    def _items(self, split: str, path: Path) -> list[dict]:
        data = load_pickle(path)
        if not isinstance(data, list) or not all(isinstance(it, dict) for it in data):
            raise DataError(
                f"{path}: expected a list of dicts (one per video), got {type(data).__name__}"
                + (f" of {type(data[0]).__name__}" if isinstance(data, list) and data else "")
            )
        if not data:
            raise DataError(f"{path}: split {split!r} holds no items")
        return data

    def parse_split(self, split: str, path: str | os.PathLike) -> _ParsedSplit:
        """Read and validate one split file (features are checked and hashed, not kept)."""
        path = Path(path)
        items = self._items(split, path)
        report = SplitReport(split=split, file=str(path), items=len(items))
        training = split in self.layout.train_splits
        if not any(it.get(self.feature_key) is not None for it in items):
            keys = sorted({k for it in items[:50] for k in it})
            raise DataError(
                f"{path}: no item has {self.feature_key!r} features (keys: {keys}); "
                f"choose another --features than {self.feature_type!r}"
            )
        video_ids: list[str] = []
        without_features: list[str] = []
        hashes: dict[str, str] = {}
        rows: list[tuple[str, str, int, str]] = []
        lacking: dict[str, list[str]] = defaultdict(list)
        counts: Counter[str] = Counter()
        ignored: set[str] = set()
        seen: set[str] = set()
        for n, item in enumerate(items):
            if "id" not in item or item["id"] is None:
                raise DataError(f"{path}: item {n} has no 'id'; every item needs the video id")
            vid = str(item["id"])
            where = f"{path}: item {n} (id {vid!r})"
            if vid in seen:
                raise DataError(
                    f"{path}: video id {vid!r} occurs twice (item {n}); ids of a split must be unique"
                )
            seen.add(vid)
            feats = item.get(self.feature_key)
            if feats is None:
                if training:
                    raise DataError(
                        f"{where} has no {self.feature_key!r} features; a training split needs "
                        "features for every video. Remove the item or re-extract its features."
                    )
                without_features.append(vid)
            else:
                feats = _check_features(feats, where, self.dim)
                self.dim = int(feats.shape[1])
                hashes[vid] = _features_hash(feats)
                video_ids.append(vid)
            per_lang: dict[str, list[str | None]] = {}
            for key, value in item.items():
                if key in ("id", self.feature_key) or not isinstance(key, str):
                    continue
                try:
                    parsed = self.layout.caption_language(key, split)
                except UnknownLanguageError:
                    ignored.add(key)
                    continue
                if parsed is None:
                    ignored.add(key)
                    continue
                code, lang = parsed
                if lang not in self.languages:
                    ignored.add(key)
                    continue
                if lang in per_lang:
                    raise DataError(
                        f"{where}: two keys hold {lang!r} captions (one is {key!r}); keep one of them"
                    )
                report.source_codes[lang] = code
                per_lang[lang] = _caption_list(value, f"{where}, key {key!r}")
            lengths = set()
            for lang in self.languages:
                caps = per_lang.get(lang, [])
                kept = 0
                for k, text in enumerate(caps):
                    if text is None or not text.strip():
                        report.skipped_empty_captions += 1
                        continue
                    rows.append((vid, lang, k, text.strip()))
                    kept += 1
                if kept == 0:
                    lacking[lang].append(vid)
                counts[lang] += kept
                lengths.add(len(caps))
            if len(lengths) > 1:
                report.unequal_caption_counts += 1
        for lang in self.languages:
            ids = lacking.get(lang, [])
            if len(ids) == len(items):
                raise DataError(
                    f"{path}: split {split!r} has no {lang!r} captions at all (caption keys tried: "
                    f"{list(self.layout.caption_templates(split))}). Import fewer languages with --languages."
                )
            if ids:
                raise DataError(
                    f"{path}: {len(ids)} of {len(items)} items of split {split!r} have no {lang!r} caption, "
                    f"e.g. {ids[:5]}. Every item needs every imported language: fix the file or import fewer "
                    "languages with --languages."
                )
        report.captions = {lang: counts[lang] for lang in self.languages}
        report.ignored_keys = sorted(ignored)
        report.videos_with_features = len(video_ids)
        report.missing_videos = len(without_features)
        parsed_split = _ParsedSplit(split, path, video_ids, rows, hashes, report)
        if split in self.listings:
            self._apply_listing(parsed_split, self.listings[split], without_features)
        return parsed_split

    def _apply_listing(
        self, parsed: _ParsedSplit, listing: SplitListing, without_features: list[str]
    ) -> None:
        """Rename ids to the listing's, check that every video is listed, add unlisted ones as missing."""
        in_file = parsed.video_ids + without_features
        unknown = [v for v in in_file if listing.canonical(v) is None]
        if unknown:
            raise DataError(
                f"{parsed.path}: {len(unknown)} video id(s) of split {parsed.name!r} are not in "
                f"{listing.path}, "
                f"e.g. {unknown[:5]}. The CSV must list every video of the split; check that both files "
                "belong to the same split."
            )
        rename = {v: c for v in in_file if (c := listing.canonical(v)) is not None}  # all of them: checked above
        parsed.video_ids = [rename[v] for v in parsed.video_ids]
        parsed.hashes = {rename[v]: h for v, h in parsed.hashes.items()}
        parsed.rows = [(rename[v], lang, k, text) for v, lang, k, text in parsed.rows]
        english = {(v, k): text for v, lang, k, text in parsed.rows if lang == "en"}
        parsed.report.listing_caption_mismatches = sum(
            1 for v in parsed.video_ids if (v, 0) in english and english[(v, 0)] != listing.captions[v]
        )
        listed = set(rename.values())
        extra = [v for v in listing.captions if v not in listed]
        for vid in extra:
            if listing.captions[vid]:
                parsed.rows.append((vid, "en", 0, listing.captions[vid]))
        parsed.report.missing_videos += len(extra)
        parsed.report.captions["en"] = parsed.report.captions.get("en", 0) + sum(
            1 for v in extra if listing.captions[v]
        )

    # ---- writing -------------------------------------------------------------------------------------------
    def run(
        self, splits: Mapping[str, str | os.PathLike], out: str | os.PathLike, name: str | None = None
    ) -> ImportReport:
        """Validate every split file, then write features, captions and the report into ``out``."""
        from c2kd.data.dataset import save_dataset
        from c2kd.data.features import FeatureStoreWriter
        from c2kd.progress import progress_bar

        if not splits:
            raise DataError("no split files given; pass SPLIT=FILE.pkl, e.g. train=train.pkl test=test.pkl")
        unused = sorted(set(self.listings) - set(splits))
        if unused:
            raise DataError(
                f"a listing CSV was given for split(s) {unused}, but no such split file; "
                f"the splits are {sorted(splits)}"
            )
        out = Path(out)
        parsed = [self.parse_split(split, path) for split, path in splits.items()]
        owner: dict[str, tuple[str, str]] = {}  # video id -> (feature hash, split that holds it)
        for p in parsed:
            for vid, digest in p.hashes.items():
                if vid in owner and owner[vid][0] != digest:
                    raise DataError(
                        f"{p.path}: video {vid!r} is also in split {owner[vid][1]!r} with different "
                        "features; "
                        "one video id must have one set of features."
                    )
                owner.setdefault(vid, (digest, p.name))
        assert self.dim is not None
        encoder, fps = self.layout.feature_encoders.get(self.feature_type, (self.feature_type, None))
        reused = 0
        with FeatureStoreWriter(
            out / "features", self.dim, encoder=encoder, fps=fps, extra={"source_key": self.feature_key}
        ) as writer:
            for p in parsed:
                items = self._items(p.name, p.path)
                listing = self.listings.get(p.name)
                for item in progress_bar(items, desc=f"features {p.name}", unit="video", disable=not self.progress):
                    feats = item.get(self.feature_key)
                    if feats is None:
                        continue
                    vid = str(item["id"])
                    vid = (listing.canonical(vid) or vid) if listing else vid  # listed: parse_split checked it
                    if vid in writer:
                        reused += 1  # stored by an earlier split of this run or by an interrupted run
                        continue
                    writer.add(vid, np.asarray(feats, np.float32))
                del items
        rows = [
            {"video_id": v, "split": p.name, "lang": lang, "caption_index": k, "text": text}
            for p in parsed
            for v, lang, k, text in p.rows
        ]
        report = ImportReport(
            dataset=self.layout.name if name is None else name,
            format=self.layout.name,
            features=self.feature_type,
            feature_dim=self.dim,
            splits={p.name: p.report for p in parsed},
            reused_videos=reused,
        )
        save_dataset(
            out,
            rows,
            name=report.dataset,
            features="features",
            missing_videos=report.missing_videos,
            feature_type=self.feature_type,
            source={
                "format": self.layout.name,
                "files": {p.name: str(p.path) for p in parsed},
                "listings": {k: str(v.path) for k, v in self.listings.items()},
            },
            notes=self.layout.notes,
        )
        write_json(out / REPORT_FILE, report.to_json())
        return report


def import_release(
    layout: DatasetLayout,
    feature_type: str,
    splits: Mapping[str, str | os.PathLike],
    out: str | os.PathLike,
    languages: Sequence[str] | None = None,
    listings: Mapping[str, str | os.PathLike] | None = None,
    name: str | None = None,
    progress: bool = True,
) -> ImportReport:
    """Import a release's split files into the dataset directory ``out``; see :class:`ReleaseImporter`.

    Example:
        >>> from c2kd.data.importers import LAYOUTS, import_release
        >>> import_release(LAYOUTS["msrvtt"], "2d", {"train": "train.pkl", "test": "test.pkl"}, "data/msrvtt",
        ...                listings={"test": "MSRVTT_JSFUSION_test.csv"})  # doctest: +SKIP
    """
    importer = ReleaseImporter(
        layout, feature_type, languages=languages, listings=listings, progress=progress
    )
    return importer.run(splits, out, name=name)
