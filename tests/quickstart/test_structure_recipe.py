"""The structure-distillation recipe: its runs differ from the quickstart's C2KD run only in the distillation."""

from __future__ import annotations

from pathlib import Path

from c2kd.experiments import planned_runs
from c2kd.quickstart import QuickstartSettings
from c2kd.structure_recipe import guarded_name, recipe_configs, table


def test_recipe_runs_are_the_quickstart_runs_with_structure_distillation(tmp_path):
    runs = recipe_configs(tmp_path / "data", tmp_path / "runs", tmp_path / "cache", QuickstartSettings(seed=2),
                          {"text_weight": 0.5})
    assert list(runs) == ["translate-train", "c2kd", "structure"]
    assert all(Path(r["out_dir"]).parent == tmp_path / "runs" / "seed2" for r in runs.values())
    c2kd, structure = runs["c2kd"], runs["structure"]
    assert structure["loss"] == {**c2kd["loss"], "distillation": "structure", "structure": {"text_weight": 0.5}}
    same = {k: v for k, v in structure.items() if k not in ("loss", "out_dir")}
    assert same == {k: v for k, v in c2kd.items() if k not in ("loss", "out_dir")}
    # the quickstart's own runs (guarded best/ and best-average/ both kept): reported as trained and as guarded
    assert all(r["seed"] == 2 and "keep_every_language" not in r for r in runs.values())
    planned = planned_runs(runs)  # valid configs
    assert planned["structure"].config.loss.structure.text_weight == 0.5
    assert planned["structure"].config.teachers.checkpoints == [str(tmp_path / "runs" / "off-the-shelf")]


def test_table_shows_mean_and_std_per_language():
    result = {"t2v": {"en": {"R@1": {"mean": 50.0, "std": 1.25, "n": 3}},
                      "average": {"R@1": {"mean": 40.0, "std": 0.5, "n": 3}}}}
    text = table({"structure": result})
    assert "| structure distillation (after MCKD) | 50.0 ± 1.2 | 40.0 ± 0.5 |" in text


def test_the_guarded_row_names_the_languages_that_blocked_it_and_in_how_many_seeds():
    runs = [{"selection": {"blocked_by": ["cs", "de"]}}, {"selection": {"blocked_by": ["cs"]}}, {"selection": {}}]
    assert guarded_name("c2kd", runs) == "C2KD, guarded (blocked by cs in 2, de in 1)"
    assert guarded_name("translate-train", [{"selection": {"blocked_by": []}}]) == "translate-train, guarded"
