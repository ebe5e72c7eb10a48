"""The quickstart's run plan: valid configs, frozen cached backbones, and the frame encoder kept apart."""

from __future__ import annotations

from pathlib import Path

from c2kd.quickstart import FRAME_ENCODER, STUDENT, TEACHERS, results_table, run_configs
from c2kd.train.config import TrainConfig


def test_the_five_runs_are_valid_and_frozen(tmp_path: Path):
    cfgs = run_configs(tmp_path / "data", tmp_path / "runs", tmp_path / "cache", epochs=3, batch_size=32, lr=1e-3,
                       seed=0, device="cpu", alpha=0.5, pooler="max")
    assert list(cfgs) == ["teacher-minilm", "teacher-e5", "zero-shot", "translate-train", "c2kd"]
    parsed = {name: TrainConfig.model_validate(c) for name, c in cfgs.items()}
    for cfg in parsed.values():
        assert not cfg.model.text.trainable and cfg.model.text.cache_dir == str(tmp_path / "cache")
        assert cfg.model.text.name != FRAME_ENCODER  # the proxy frames come from a model no text tower uses
    c2kd = parsed["c2kd"]
    assert c2kd.stage == "c2kd" and c2kd.teachers.language == "english" and c2kd.teachers.pooler == "max"
    assert c2kd.teachers.checkpoints == [cfgs["teacher-minilm"]["out_dir"], cfgs["teacher-e5"]["out_dir"]]
    assert {parsed[n].model.text.name for n in ("teacher-minilm", "teacher-e5")} == set(TEACHERS)
    assert parsed["zero-shot"].model.text.name == STUDENT and parsed["zero-shot"].stage == "zero-shot"
    assert len({c.seed for c in parsed.values()}) == 3  # teachers have their own seeds; students share one


def test_results_table_has_a_row_per_run():
    metrics = {m: 10.0 for m in ("R@1", "R@5", "R@10", "MedR", "MeanR")}
    res = {"t2v": {"en": metrics, "de": metrics, "average": metrics}}
    table = results_table({"zero-shot": res, "c2kd": res}).splitlines()
    assert table[0].startswith("| setting | en R@1 | de R@1 | fr R@1 | cs R@1 | average R@1")
    assert table[2].startswith("| zero-shot | 10.0 | 10.0 | - | - | 10.0")
    assert len(table) == 4
