"""Run a set of training runs: the runs they read (teachers) first, each trained or read back once finished.

The quickstart (a built-in plan), its quality benchmark (a sweep over that plan) and ``c2kd reproduce`` (recipes)
all run their training through this module:

- a run is a :class:`PlannedRun`: a name, a validated config and its folder (``config.out_dir``);
- :func:`in_order` puts every run after the runs whose folders it reads as teacher checkpoints;
- :func:`train_or_read` returns a run's test metrics: read back when the folder holds a run finished with the same
  settings, else trained (resuming an interrupted run). A folder finished with other settings is an error.

Folders named by settings (:func:`hashed_folder`) let identical runs of different plans share one folder.

Tables that compare methods report each run **as trained**, at its best epoch by the validation average
(``best-average/``, :func:`as_trained`: the paper's protocol), and beside it the **guarded** model ``best/`` that
c2kd hands to users (no language validates below the start), labelled with the languages that blocked the
better epoch (:func:`compared_rows`).
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


# -- reporting runs as trained and as guarded ------------------------------------------------------------------
def as_trained(result: Mapping) -> dict:
    """A run's test results at its best epoch by the validation average (``best-average/``, the paper's
    protocol); a result without that record (a baseline that did not train, or a run saved before it was kept)
    is its own."""
    trained = result.get("as_trained")
    return dict(trained) if isinstance(trained, Mapping) else dict(result)


def guarded_label(name: str, result: Mapping) -> str:
    """The label of a run's guarded row: ``translate-train, guarded (start kept; blocked by de, fr)``."""
    selection = result.get("selection", {})
    chosen = "start kept" if selection.get("kept_start") else f"epoch {selection.get('epoch')}"
    blocked = selection.get("blocked_by") or []
    if selection.get("epoch") == as_trained(result).get("selection", {}).get("epoch"):
        chosen += ", as trained"
    return f"{name}, guarded ({chosen}" + (f"; blocked by {', '.join(blocked)}" if blocked else "") + ")"


def compared_rows(results: Mapping[str, Mapping]) -> dict[str, dict]:
    """The rows of a table comparing methods, in order: a baseline that did not train as it is; a trained run
    (one whose result records its ``selection``) as trained under its own name, then its guarded ``best/``
    under :func:`guarded_label`."""
    rows: dict[str, dict] = {}
    for name, result in results.items():
        if "selection" not in result:
            rows[name] = dict(result)
            continue
        rows[name] = as_trained(result)
        rows[guarded_label(name, result)] = dict(result)
    return rows


def guard_note(results: Mapping[str, Mapping]) -> str:
    """What the two rows of each trained run are, and which runs the guard sent back to their start."""
    trained = [name for name, res in results.items() if "selection" in res]
    if not trained:
        return ""
    epochs = ", ".join(f"{name} epoch {as_trained(results[name]).get('selection', {}).get('epoch', '?')}"
                       for name in trained)
    note = ("Each trained run is shown as trained, at its best epoch by the validation average (best-average/, "
            f"the paper's protocol: {epochs}), then as guarded: best/, what c2kd hands to users, the best epoch "
            "in which no language validates below the start; the languages named blocked a better epoch.")
    kept = [name for name in trained if results[name]["selection"].get("kept_start")]
    if kept:
        note += (f" Guarded, {', '.join(kept)} handed back the untrained start (their guarded rows equal the "
                 "baseline's).")
    return note
