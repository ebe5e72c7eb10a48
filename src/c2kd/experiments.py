"""Run a set of training runs: the runs they read (teachers) first, each trained or read back once finished.

The quickstart (a built-in plan), its quality benchmark (a sweep over that plan) and ``c2kd reproduce`` (recipes)
all run their training through this module:

- a run is a :class:`PlannedRun`: a name, a validated config and its folder (``config.out_dir``);
- :func:`in_order` puts every run after the runs whose folders it reads as teacher checkpoints;
- :func:`train_or_read` returns a run's test metrics: read back when the folder holds a run finished with the same
  settings, else trained (resuming an interrupted run). A folder finished with other settings is an error.

Folders named by settings (:func:`hashed_folder`) let identical runs of different plans share one folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from c2kd.checkpoint import run_identity
from c2kd.errors import ConfigError, validation_problems
from c2kd.train.config import TrainConfig


@dataclass
class PlannedRun:
    """One training run of a plan: a teacher (``kind="teacher"``) or a student, at ``config.seed``."""

    kind: str
    name: str
    config: TrainConfig

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def folder(self) -> Path:
        return Path(self.config.out_dir)

    @property
    def finished(self) -> bool:
        """Whether the run was trained and tested with these settings (see `finished_run_metrics`)."""
        from c2kd.train.run import finished_run_metrics

        return finished_run_metrics(self.config) is not None


def validated(tree: dict, where: str) -> TrainConfig:
    """``tree`` as a :class:`TrainConfig`; a ConfigError naming ``where`` and every invalid setting otherwise."""
    from pydantic import ValidationError

    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"{where}: invalid configuration: {validation_problems(exc)}") from exc


def config_hash(tree: dict) -> str:
    """Ten hex digits of the SHA-256 of the settings in ``tree`` that make the run what it is."""
    return hashlib.sha256(json.dumps(run_identity(tree), sort_keys=True, default=str).encode()).hexdigest()[:10]


def hashed_folder(root: Path, name: str, seed: int, tree: dict) -> Path:
    """``root/<name>-s<seed>-<hash of the run's identity>``: runs with the same settings share it."""
    return root / f"{name}-s{seed}-{config_hash(tree)}"


def planned_runs(trees: Mapping[str, dict], kind: str = "run") -> dict[str, PlannedRun]:
    """Validate named config trees (each with its ``out_dir``) into planned runs, keeping their names."""
    return {name: PlannedRun(kind, name, validated(tree, f"run {name!r}")) for name, tree in trees.items()}


def _reads(run: PlannedRun) -> list[Path]:
    teachers = run.config.teachers
    return [Path(path) for path in teachers.checkpoints] if teachers else []


def in_order(runs: Iterable[PlannedRun], only: Sequence[str] | None = None) -> list[PlannedRun]:
    """``runs`` with each one after the runs of the set whose folders it reads (its teachers), else as given.

    With ``only``, just the runs of those names and the runs they read. A cycle is a ConfigError.
    """
    runs = list(runs)
    by_folder = {run.folder: run for run in runs}
    ordered: list[PlannedRun] = []
    placed: set[int] = set()
    visiting: set[int] = set()

    def visit(run: PlannedRun) -> None:
        if id(run) in placed:
            return
        if id(run) in visiting:
            raise ConfigError(f"run {run.name!r} reads itself through its teachers")
        visiting.add(id(run))
        for folder in _reads(run):
            if folder in by_folder:
                visit(by_folder[folder])
        visiting.discard(id(run))
        placed.add(id(run))
        ordered.append(run)

    for run in runs:
        if only is None or run.name in only:
            visit(run)
    return ordered


def train_or_read(config: TrainConfig) -> dict:
    """Test metrics of a run: read back when it finished with the same settings, else trained (resumable)."""
    from c2kd.train.run import finished_run_metrics, train

    if config.data.test_split is None:
        raise ConfigError(f"{config.out_dir}: the run has no test split (data.test_split), so no test metrics")
    metrics = finished_run_metrics(config)
    if metrics is None:
        train(config, resume=True)
        metrics = finished_run_metrics(config)
    assert metrics is not None, f"{config.out_dir}: training finished without test metrics"
    return metrics
