"""Typed run configuration, read from YAML with ``key.path=value`` overrides; a misspelt key is an error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from c2kd.checkpoint import dump_config
from c2kd.distill.teachers import TeacherConfig
from c2kd.errors import ConfigError, validation_problems
from c2kd.evaluation.metrics import MissingRanks, TiePolicy
from c2kd.languages import ENGLISH, normalize_languages
from c2kd.losses.objective import LossConfig
from c2kd.model import ModelConfig
from c2kd.options import key_value

Stage = Literal["zero-shot", "translate-train", "c2kd"]
STAGES: tuple[str, ...] = get_args(Stage)

__all__ = ["STAGES", "DataConfig", "LossConfig", "OptimConfig", "Stage", "TeacherConfig", "TrainConfig",
           "dump_config", "load_config", "parse_overrides"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    path: str
    #: training languages; default: every language of the dataset (zero-shot trains on English only)
    languages: list[str] | None = None
    #: evaluation languages; default: every language of the dataset
    eval_languages: list[str] | None = None
    train_split: str = "train"
    val_split: str | None = "val"
    test_split: str | None = "test"
    num_workers: int = 0

    @field_validator("languages", "eval_languages")
    @classmethod
    def _normalise(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalize_languages(value)


class OptimConfig(_Strict):
    lr: float = Field(1e-4, gt=0)
    lr_decay: float = Field(0.9, gt=0, le=1.0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = None
    #: learning rate of tables trained with sparse gradients (the word bag, ``model.text.words``; not decayed)
    sparse_lr: float = Field(1e-2, gt=0)
    #: decay of an exponential moving average of the trainable weights (e.g. 0.999), which is then what is
    #: validated and kept as best/; None: the weights themselves
    average: float | None = Field(None, gt=0, lt=1)


class TrainConfig(_Strict):
    """Everything one training run needs; saved as ``config.yaml`` beside every checkpoint."""

    stage: Stage = "translate-train"
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    teachers: TeacherConfig = Field(default_factory=TeacherConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=2)
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    out_dir: str = "runs/run"
    monitor: str = "t2v/average/R@1"
    #: model selection on val includes the untrained start (epoch 0); with this set, an epoch is kept as best/ only
    #: if no evaluation language validates below its start (for an averaged monitor): a model started from an
    #: off-the-shelf encoder is never handed back worse than it in a language
    keep_every_language: bool = True
    #: rank of a correct video tied with wrong ones: "average" (expected rank under a random order of ties);
    #: "optimistic" (ties below the correct video) is what the original code computed
    tie_policy: TiePolicy = "average"
    #: MedR/MeanR of queries whose video has no features (they miss at every K in both): "gallery" ranks them
    #: at the gallery size; "present" leaves them out of MedR/MeanR, as the original code did
    missing_ranks: MissingRanks = "gallery"
    log_every: int = Field(10, ge=1)
    #: also write last/ every N optimizer steps (for long epochs); None: once per epoch
    save_every_steps: int | None = Field(None, ge=1)
    tensorboard: bool = True
    progress: bool = True

    @model_validator(mode="after")
    def _check_stage(self) -> TrainConfig:
        if self.stage == "c2kd":
            if not self.teachers.checkpoints:
                raise ValueError("stage 'c2kd' needs teachers.checkpoints (trained teacher run folders)")
            if not self.loss.uses_teachers:
                raise ValueError("stage 'c2kd' needs loss.alpha < 1 (the paper: 0.5 MSR-VTT, 0.1 YouCook2/VATEX)")
        elif self.loss.uses_teachers:
            raise ValueError(f"stage {self.stage!r} trains with NCE only: set loss.alpha=1 or use stage 'c2kd'")
        if self.stage == "zero-shot" and self.data.languages not in (None, [ENGLISH]):
            raise ValueError("stage 'zero-shot' trains on English only; leave data.languages unset")
        return self

    def training_languages(self, available: list[str]) -> list[str]:
        if self.stage == "zero-shot":
            return [ENGLISH]
        return self.data.languages or list(available)


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def _read_yaml(text: str, where: str, fix: str) -> Any:
    """Parse YAML, or raise a one-line :class:`ConfigError` naming ``where``, the place of the error and ``fix``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{place} ({problem}); {fix}") from exc


def parse_overrides(overrides: list[str]) -> dict:
    """``["loss.alpha=0.5", "data.languages=[en,de]"]`` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in overrides:
        shape = "key.path=value, e.g. loss.alpha=0.5"
        key, raw = key_value(item, "override", shape)
        if not all(part.strip() for part in key.split(".")):
            raise ConfigError(f"override {item!r} must look like {shape}")
        value = _read_yaml(raw, f"override {item!r}: the value",
                           "quote a value meant as text, e.g. key='\"[1\"', or write a list as [a,b]")
        _set_path(tree, key.strip(), value)
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> TrainConfig:
    """Read a YAML config (optional), apply overrides, validate. Errors name the file and the bad keys."""
    tree: dict = dict(base or {})
    source = "overrides"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} not found")
        loaded = _read_yaml(p.read_text(), f"config file {p}", "fix the file (see configs/ for examples)") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of settings")
        tree = _merge(tree, loaded)
    tree = _merge(tree, parse_overrides(overrides or []))
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid configuration: {validation_problems(exc)}") from exc
