"""c2kd.experiments: teachers run before the students that read them, folders are named by settings, a finished
run is read back without training, and a folder holding other settings is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from c2kd.checkpoint import BEST_DIR, WEIGHTS_FILE
from c2kd.errors import ConfigError
from c2kd.experiments import PlannedRun, hashed_folder, in_order, planned_runs, train_or_read
from c2kd_testkit import tiny_config


def _trees(tiny_dataset: Path, models: dict[str, Path], root: Path) -> dict[str, dict]:
    """A C2KD student listed before the teacher whose folder it reads, and an unrelated baseline."""
    def tree(name: str, model: str, **overrides) -> dict:
        config = tiny_config(tiny_dataset, models[model], root / name, epochs=1, **overrides)
        return config.model_dump(mode="json")

    teacher = tree("teacher", "teacher_a")
    return {
        "student": tree("student", "student", stage="c2kd", loss__alpha=0.5,
                        teachers__checkpoints=f"[{root / 'teacher'}]"),
        "baseline": tree("baseline", "student"),
        "teacher": teacher,
    }


def test_a_student_runs_after_the_teacher_it_reads(tiny_dataset, tiny_text_models, tmp_path):
    plan = planned_runs(_trees(tiny_dataset, tiny_text_models, tmp_path))
    assert [run.name for run in in_order(plan.values())] == ["teacher", "student", "baseline"]
    assert [run.name for run in in_order(plan.values(), only=["student"])] == ["teacher", "student"]
    assert [run.name for run in in_order(plan.values(), only=["baseline"])] == ["baseline"]


def test_runs_that_read_each_other_are_refused(tiny_dataset, tiny_text_models, tmp_path):
    trees = _trees(tiny_dataset, tiny_text_models, tmp_path)
    trees["teacher"].update(stage="c2kd", loss={"alpha": 0.5}, teachers={"checkpoints": [str(tmp_path / "student")]})
    with pytest.raises(ConfigError, match="reads itself"):
        in_order(planned_runs(trees).values())


def test_an_invalid_setting_is_named_with_its_run(tiny_dataset, tiny_text_models, tmp_path):
    trees = _trees(tiny_dataset, tiny_text_models, tmp_path)
    trees["baseline"]["epochs"] = 0
    with pytest.raises(ConfigError, match=r"run 'baseline': invalid configuration: epochs"):
        planned_runs(trees)


def test_folders_are_named_by_run_seed_and_the_settings_that_make_the_run(tiny_dataset, tiny_text_models, tmp_path):
    tree = _trees(tiny_dataset, tiny_text_models, tmp_path)["baseline"]
    folder = hashed_folder(tmp_path, "nce", 2, tree)
    assert folder.parent == tmp_path and re.fullmatch(r"nce-s2-[0-9a-f]{10}", folder.name)
    assert hashed_folder(tmp_path, "nce", 2, {**tree, "device": "cuda", "out_dir": "elsewhere"}) == folder
    assert hashed_folder(tmp_path, "nce", 2, {**tree, "batch_size": 8}) != folder


def test_a_finished_run_is_read_back_and_other_settings_are_refused(tiny_dataset, tiny_text_models, tmp_path):
    plan = planned_runs(_trees(tiny_dataset, tiny_text_models, tmp_path))
    results = {run.name: train_or_read(run.config) for run in in_order(plan.values(), only=["student"])}
    assert set(results["student"]["t2v"]) == {"en", "de", "fr", "cs", "average"}  # it read its trained teacher
    weights = plan["student"].folder / BEST_DIR / WEIGHTS_FILE
    trained_at = weights.stat().st_mtime_ns

    again = planned_runs(_trees(tiny_dataset, tiny_text_models, tmp_path))["student"]
    assert again.finished and train_or_read(again.config) == results["student"]
    assert weights.stat().st_mtime_ns == trained_at  # read back, not trained again

    other = again.config.model_copy(update={"loss": again.config.loss.model_copy(update={"alpha": 0.9})})
    with pytest.raises(ConfigError, match=r"other settings \(loss.alpha"):
        train_or_read(other)
    assert weights.stat().st_mtime_ns == trained_at
    assert not PlannedRun("run", "baseline", plan["baseline"].config).finished


def test_a_run_without_test_split_is_refused_before_training(tiny_dataset, tiny_text_models, tmp_path):
    config = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "run", data__test_split="null")
    with pytest.raises(ConfigError, match="no test split"):
        train_or_read(config)
    assert not (tmp_path / "run").exists()
