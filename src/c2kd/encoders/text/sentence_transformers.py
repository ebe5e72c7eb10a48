"""A text model in sentence-transformers layout (kind ``sentence-transformers``), read with transformers + torch.

The layout: a transformer at the root or in ``0_Transformer/``, ``1_Pooling/``, optional ``2_Dense/`` and
``Normalize`` modules. With ``sentence-transformers/clip-ViT-B-32-multilingual-v1`` (multilingual DistilBERT, mean
pooling, a 768 -> 512 linear map) captions in 50+ languages land in CLIP ViT-B/32's image space. The
sentence-transformers package is not needed. Trainable; the pooling and Dense settings are saved in its record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from c2kd.encoders.hub import ensure_hub_source, load_error
from c2kd.encoders.text.base import (
    TEXT_LOADERS,
    TextBackbone,
    TextPreset,
    quiet_transformers,
    read_record,
    saved_kind,
    write_record,
)
from c2kd.encoders.text.hf import HFTextBackbone
from c2kd.errors import ConfigError


def is_sentence_transformer_folder(path: str | Path) -> bool:
    """A local folder in sentence-transformers layout (it has a ``modules.json``)."""
    return (Path(path) / "modules.json").is_file()


_ST_POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                     "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
                     "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
_SUPPORTED_POOLING = ("mean", "cls")


def _activation(name: str) -> nn.Module:
    """A Dense module's ``activation_function`` (e.g. ``torch.nn.modules.linear.Identity``) as a module."""
    short = str(name).rsplit(".", 1)[-1]
    cls = getattr(nn, short, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)) or short not in (
            "Identity", "Tanh", "ReLU", "GELU", "Sigmoid", "SiLU", "LeakyReLU", "ELU", "Softplus"):
        raise ConfigError(f"Dense activation {name!r} is not supported; use one of torch.nn Identity, Tanh, ReLU, "
                          "GELU, Sigmoid, SiLU")
    return cls()


class _Files:
    """Files of a sentence-transformers model: in a local folder, or downloaded one by one from the hub."""

    def __init__(self, source: str, hub_options: dict[str, Any] | None = None):
        self.source = source
        self.local = Path(source).expanduser()
        self.is_local = self.local.exists()
        self.hub_options = dict(hub_options or {})

    def get(self, relative: str) -> Path | None:
        if self.is_local:
            path = self.local / relative
            return path if path.is_file() else None
        from huggingface_hub import hf_hub_download

        try:
            from huggingface_hub.errors import EntryNotFoundError
        except ImportError:  # pragma: no cover - huggingface_hub < 0.23
            from huggingface_hub.utils import EntryNotFoundError

        try:
            return Path(hf_hub_download(self.source, relative, **self.hub_options))
        except EntryNotFoundError:
            return None

    def json(self, relative: str, required: bool = True) -> Any:
        path = self.get(relative)
        if path is None:
            if required:
                raise ConfigError(f"{self.source}: {relative} not found; is it a sentence-transformers model folder?")
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None

    def transformer_source(self, path: str) -> tuple[str, dict[str, Any]]:
        """Where ``from_pretrained`` finds the transformer of module folder ``path``, and its hub subfolder."""
        if self.is_local:
            return str(self.local / path), {}
        return self.source, ({"subfolder": path} if path else {}) | self.hub_options


def _dense_weights(files: _Files, path: str) -> dict[str, Tensor]:
    """The ``linear.weight`` / ``linear.bias`` of a Dense module folder (safetensors, else a torch pickle)."""
    found = files.get(f"{path}/model.safetensors")
    if found is not None:
        from safetensors.torch import load_file

        return load_file(str(found))
    found = files.get(f"{path}/pytorch_model.bin")
    if found is None:
        raise ConfigError(f"{files.source}/{path}: no model.safetensors or pytorch_model.bin with the Dense weights")
    return torch.load(str(found), map_location="cpu", weights_only=True)


@saved_kind
class SentenceTransformerTextBackbone(TextBackbone):
    """Transformer -> pooling (mean over the attention mask, or CLS) -> Dense layers -> optional L2 normalisation.

    Reproduces a sentence-transformers model of that shape with ``transformers`` + ``torch``. The transformer is
    an :class:`~c2kd.encoders.text.hf.HFTextBackbone` (sub-module ``transformer``), the Dense layers an
    ``nn.Sequential`` (sub-module ``projection``).

    Shape:
        prepare(texts: B strings) -> {"input_ids": [B, L], "attention_mask": [B, L]}; forward -> [B, dim]
    """

    kind = "sentence-transformers"

    def __init__(self, transformer: HFTextBackbone, dense: Sequence[dict[str, Any]] = (), pooling: str = "mean",
                 normalize: bool = False, lowercase: bool = False, max_seq_length: int | None = None,
                 name: str | None = None):
        super().__init__()
        if pooling not in _SUPPORTED_POOLING:
            raise ConfigError(f"pooling mode {pooling!r} is not supported; a sentence-transformers model with "
                              f"{' or '.join(_SUPPORTED_POOLING)} pooling is needed")
        self.transformer = transformer
        self.name = name or transformer.name
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.lowercase = bool(lowercase)
        self.max_seq_length = max_seq_length
        self.dense_configs = [dict(d) for d in dense]
        layers: list[nn.Module] = []
        width = transformer.dim
        for cfg in self.dense_configs:
            if int(cfg["in_features"]) != width:
                raise ConfigError(f"{self.name}: a Dense layer takes {cfg['in_features']}-d input but gets {width}-d")
            layers.append(nn.Linear(int(cfg["in_features"]), int(cfg["out_features"]), bias=bool(cfg.get("bias",
                                                                                                          True))))
            layers.append(_activation(cfg.get("activation_function", "torch.nn.modules.linear.Identity")))
            width = int(cfg["out_features"])
        self.projection = nn.Sequential(*layers)
        self.dim = width

    # -- loading ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: str) -> SentenceTransformerTextBackbone:
        """Load a sentence-transformers model from a hub id or a local folder (``modules.json`` read first)."""
        from transformers import AutoModel, AutoTokenizer

        what = "sentence-transformers model"
        hub = ensure_hub_source(source, what, probe_file="modules.json", use_as="st:DIR")
        quiet_transformers()
        files = _Files(source, hub)
        try:
            modules = files.json("modules.json")
            kinds = [(str(m.get("type", "")).rsplit(".", 1)[-1], str(m.get("path", ""))) for m in modules]
            unknown = [k for k, _ in kinds if k not in ("Transformer", "Pooling", "Dense", "Normalize")]
            if unknown:
                raise ConfigError(f"{source}: modules {unknown} are not supported (only Transformer, Pooling, Dense, "
                                  "Normalize)")
            if not kinds or kinds[0][0] != "Transformer" or sum(k == "Pooling" for k, _ in kinds) != 1:
                raise ConfigError(f"{source}: modules.json must list a Transformer first and one Pooling module")
            path = kinds[0][1]
            st_config = files.json(f"{path}/sentence_bert_config.json".lstrip("/"), required=False)
            where, extra = files.transformer_source(path)
            tokenizer = AutoTokenizer.from_pretrained(where, **extra)
            model = AutoModel.from_pretrained(where, **extra)
            pooling = _pooling_mode(files.json(f"{dict(kinds)['Pooling']}/config.json".lstrip("/")), source)
            dense, weights = [], []
            for kind, module_path in kinds:
                if kind == "Dense":
                    dense.append(files.json(f"{module_path}/config.json"))
                    weights.append(_dense_weights(files, module_path))
        except OSError as exc:
            raise load_error(source, what, exc) from exc
        backbone = cls(HFTextBackbone(model, tokenizer, name=source), dense, pooling=pooling,
                       normalize=any(k == "Normalize" for k, _ in kinds),
                       lowercase=bool(st_config.get("do_lower_case", False)),
                       max_seq_length=st_config.get("max_seq_length"), name=source)
        linears = [m for m in backbone.projection if isinstance(m, nn.Linear)]
        for linear, state in zip(linears, weights):
            state = {k.removeprefix("linear."): v for k, v in state.items()}
            try:
                linear.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ConfigError(f"{source}: the Dense weights do not match their config.json ({exc})") from None
        return backbone.eval()

    @classmethod
    def from_architecture(cls, directory: Path, name: str, record: dict[str, Any] | None = None
                          ) -> SentenceTransformerTextBackbone:
        """Rebuild from a checkpoint's ``text_backbone/`` (transformer config, tokenizer, the record's pooling and
        Dense layers)."""
        spec = record if record is not None else read_record(directory) or {}
        transformer = HFTextBackbone.from_architecture(directory, name=name)
        return cls(transformer, spec.get("dense", []), pooling=spec.get("pooling", "mean"),
                   normalize=spec.get("normalize", False), lowercase=spec.get("lowercase", False),
                   max_seq_length=spec.get("max_seq_length"), name=name)

    def record(self) -> dict[str, Any]:
        return {**super().record(), "pooling": self.pooling, "dense": self.dense_configs,
                "normalize": self.normalize, "lowercase": self.lowercase, "max_seq_length": self.max_seq_length}

    def save_architecture(self, directory: Path) -> None:
        self.transformer.save_files(directory)
        write_record(directory, self.record())

    # -- embedding ----------------------------------------------------------------------------------------
    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        if self.max_seq_length:
            max_tokens = min(max_tokens, int(self.max_seq_length))
        if self.lowercase:
            texts = [t.lower() for t in texts]
        return self.transformer.prepare(texts, max_tokens)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        if self.pooling == "mean":
            pooled = self.transformer(inputs)  # mean over the real tokens, [B, H]
        else:
            hidden = self.transformer.model(input_ids=inputs["input_ids"],
                                            attention_mask=inputs["attention_mask"]).last_hidden_state
            pooled = hidden[:, 0]  # [B, H]
        out = self.projection(pooled)  # [B, dim]
        return F.normalize(out, dim=-1) if self.normalize else out


@TEXT_LOADERS.register("sentence-transformers")
def load_sentence_transformer(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
    """A sentence-transformers model with its pooling and Dense layers (``st:SOURCE``)."""
    backbone = SentenceTransformerTextBackbone.from_pretrained(source)
    backbone.name = name
    return backbone


def _pooling_mode(config: dict[str, Any], source: str) -> str:
    """The one pooling mode of a ``Pooling/config.json`` (old boolean flags or the newer ``pooling_mode``)."""
    if "pooling_mode" in config and isinstance(config["pooling_mode"], str):
        modes = [config["pooling_mode"]]
    else:
        modes = [mode for key, mode in _ST_POOLING_MODES.items() if config.get(key)]
    if len(modes) != 1 or modes[0] not in _SUPPORTED_POOLING:
        raise ConfigError(f"{source}: pooling {modes or 'none'} is not supported; one of "
                          f"{', '.join(_SUPPORTED_POOLING)} is needed")
    return modes[0]
