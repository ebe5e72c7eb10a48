"""Per-dataset layout specs of the authors' released split files.

Every split file is a pickled list of dicts, one per video (or clip)::

    {"id": "video7020", "2d": float32 [T, 512], "3d": float32 [T, 1024], "audio": ...,   # features
     "caption_en": [20 strings], "caption_de": [20 strings], ...}                         # training split
    {"id": "video9770", "2d": ..., "eval_caption_en": "a string", "eval_caption_de": ...} # evaluation split

A :class:`DatasetLayout` says which item key holds the features for ``--features 2d|3d`` and which key
patterns hold captions. Language codes are read *from the keys* and normalised with :mod:`c2kd.languages`, so
the release's ``caption_cz`` becomes Czech (``cs``). A caption value may be one string or a list of strings;
its position in the list is the caption index, shared by translations.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from c2kd.errors import ConfigError
from c2kd.languages import BENCHMARK_LANGUAGES, normalize_language

#: a language code inside a key: ``en``, ``cz``, ``zh-cn`` (no underscores, so ``caption_en_raw`` is not one)
_CODE = r"(?P<code>[A-Za-z]{2,3}(?:-[A-Za-z]{2,4})?)"


@dataclass(frozen=True)
class DatasetLayout:
    """How one dataset's release lays out its split files.

    Attributes:
        name: dataset name written to ``dataset.json``.
        languages: registry codes imported by default (``--languages`` overrides).
        feature_keys: ``--features`` choice -> item key holding ``[T, D]`` features.
        feature_encoders: ``--features`` choice -> (encoder name, frames per second or None) for the store.
        train_caption_keys: key templates of training splits, ``{code}`` standing for a language code.
        eval_caption_keys: key templates of evaluation splits, tried in order (the first that matches wins).
        fixed_keys: literal key -> registry code, for keys without a code (YouCook2's ``caption`` is English).
        train_splits: split names read with ``train_caption_keys``; every other split is an evaluation split.
        notes: a remark stored in ``dataset.json`` (e.g. captions aligned only by position).
    """

    name: str
    languages: tuple[str, ...]
    feature_keys: dict[str, str]
    feature_encoders: dict[str, tuple[str, float | None]]
    train_caption_keys: tuple[str, ...] = ("caption_{code}",)
    eval_caption_keys: tuple[str, ...] = ("eval_caption_{code}", "caption_{code}")
    fixed_keys: dict[str, str] = field(default_factory=dict)
    train_splits: tuple[str, ...] = ("train",)
    notes: str = ""

    def caption_templates(self, split: str) -> tuple[str, ...]:
        return self.train_caption_keys if split in self.train_splits else self.eval_caption_keys

    def caption_language(self, key: str, split: str) -> tuple[str, str] | None:
        """``(raw code, registry code)`` if ``key`` holds captions in ``split``, else None.

        Raises :class:`c2kd.errors.UnknownLanguageError` for a caption key whose code is not a language.
        """
        if key in self.fixed_keys:
            return key, normalize_language(self.fixed_keys[key])
        for template in self.caption_templates(split):
            pattern = "^" + re.escape(template).replace(re.escape("{code}"), _CODE) + "$"
            match = re.match(pattern, key)
            if match:
                return match["code"], normalize_language(match["code"])
        return None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "languages": list(self.languages),
            "feature_keys": self.feature_keys,
            "feature_encoders": {k: list(v) for k, v in self.feature_encoders.items()},
            "train_caption_keys": list(self.train_caption_keys),
            "eval_caption_keys": list(self.eval_caption_keys),
            "fixed_keys": self.fixed_keys,
            "train_splits": list(self.train_splits),
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "<layout>") -> DatasetLayout:
        try:
            return cls(
                name=str(data["name"]),
                languages=tuple(normalize_language(x) for x in data["languages"]),
                feature_keys=dict(data["feature_keys"]),
                feature_encoders={
                    k: (str(v[0]), None if v[1] is None else float(v[1]))
                    for k, v in data.get("feature_encoders", {}).items()
                },
                train_caption_keys=tuple(data.get("train_caption_keys", ("caption_{code}",))),
                eval_caption_keys=tuple(
                    data.get("eval_caption_keys", ("eval_caption_{code}", "caption_{code}"))
                ),
                fixed_keys=dict(data.get("fixed_keys", {})),
                train_splits=tuple(data.get("train_splits", ("train",))),
                notes=str(data.get("notes", "")),
            )
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{source}: not a valid layout ({type(exc).__name__}: {exc}); it needs name, "
                "languages and feature_keys, see docs/reproduce.md"
            ) from exc


_CLIP = ("clip-vit-b32", 1.0)
_S3D = ("s3d-howto100m-milnce", None)

LAYOUTS: dict[str, DatasetLayout] = {
    "msrvtt": DatasetLayout(
        name="multi-msrvtt",
        languages=BENCHMARK_LANGUAGES["multi-msrvtt"],
        feature_keys={"2d": "2d", "3d": "3d"},
        feature_encoders={"2d": _CLIP, "3d": _S3D},
        notes="Multi-MSRVTT: translations of one English caption share its caption_index.",
    ),
    "vatex": DatasetLayout(
        name="vatex",
        languages=BENCHMARK_LANGUAGES["vatex"],
        feature_keys={"2d": "2d", "3d": "3d"},
        feature_encoders={"2d": _CLIP, "3d": _S3D},
        notes=(
            "VATEX: the 10 Chinese captions of a video are independent descriptions, not translations of "
            "the English ones; they share caption_index only by position in the release's lists."
        ),
    ),
    "youcook2": DatasetLayout(
        name="multi-youcook2",
        languages=BENCHMARK_LANGUAGES["multi-youcook2"],
        feature_keys={"2d": "2d_full", "3d": "3d_full"},
        feature_encoders={"2d": _CLIP, "3d": _S3D},
        fixed_keys={"caption": "en"},
        notes=(
            "Multi-YouCook2: non-English captions are machine translations of the English one "
            "(same caption_index); the release stores Czech as 'cz', imported as 'cs'."
        ),
    ),
    "rudder": DatasetLayout(
        name="rudder",
        languages=BENCHMARK_LANGUAGES["rudder"],
        feature_keys={"2d": "2d", "3d": "3d"},
        feature_encoders={"2d": _CLIP, "3d": _S3D},
        notes="RUDDER: captions in English, Hindi, Marathi and Kannada aligned by caption_index.",
    ),
}


def get_layout(fmt: str | os.PathLike) -> DatasetLayout:
    """A built-in layout by name (msrvtt, vatex, youcook2, rudder) or a JSON layout file."""
    if str(fmt) in LAYOUTS:
        return LAYOUTS[str(fmt)]
    path = Path(fmt)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON ({exc})") from exc
        return DatasetLayout.from_json(data, source=str(path))
    raise ConfigError(
        f"Unknown import format {str(fmt)!r}; use one of {sorted(LAYOUTS)} or a layout .json file"
    )
