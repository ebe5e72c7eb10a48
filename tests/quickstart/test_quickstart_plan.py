"""The quickstart's run plan: every trained run starts from the off-the-shelf aligned pair, teachers read English."""

from __future__ import annotations

from pathlib import Path

from c2kd.quickstart import (
    FRAME_ENCODER,
    OFF_THE_SHELF,
    TEXT_BACKBONES,
    below_baseline,
    results_table,
    run_configs,
)
from c2kd.train.config import TrainConfig


def test_the_three_runs_start_from_the_aligned_pair(tmp_path: Path):
    cfgs = run_configs(tmp_path / "data", tmp_path / "runs", tmp_path / "cache", epochs=3, batch_size=32, lr=1e-3,
                       seed=0, device="cpu", alpha=0.5, pooler="mean")
    assert list(cfgs) == ["teacher-en", "zero-shot", "translate-train", "c2kd"]
    parsed = {name: TrainConfig.model_validate(c) for name, c in cfgs.items()}
    for cfg in parsed.values():
        text, video = cfg.model.text, cfg.model.video
        assert not text.trainable and text.cache_dir == str(tmp_path / "cache")
        assert text.head == "aligned" and [text.name, *text.fuse] == list(TEXT_BACKBONES)
        assert text.name == FRAME_ENCODER  # the aligned pair: USE text against USE frames
        assert video.aligned and video.feature_dim == video.embed_dim == text.embed_dim == 512
        assert cfg.keep_every_language
    c2kd = parsed["c2kd"]
    assert c2kd.stage == "c2kd" and c2kd.teachers.language == "english" and c2kd.teachers.pooler == "mean"
    assert c2kd.teachers.checkpoints == [str(tmp_path / "runs" / OFF_THE_SHELF), cfgs["teacher-en"]["out_dir"]]
    assert parsed["teacher-en"].data.eval_languages == ["en"]  # selected on English: it only reads English
    assert parsed["zero-shot"].stage == "zero-shot" and parsed["translate-train"].stage == "translate-train"


def test_results_table_has_a_row_per_run_and_the_baseline_comparison_names_languages():
    def res(**r1):
        metrics = {lang: {m: r1.get(lang, 10.0) for m in ("R@1", "R@5", "R@10", "MedR", "MeanR")}
                   for lang in ("en", "de", "average")}
        return {"t2v": metrics, "v2t": metrics}

    results = {OFF_THE_SHELF: res(en=60.0, de=40.0), "c2kd": res(en=59.5, de=50.0)}
    table = results_table(results).splitlines()
    assert table[0].startswith("| setting | en R@1 | de R@1 | fr R@1 | cs R@1 | average R@1")
    assert table[2].startswith(f"| {OFF_THE_SHELF} | 60.0 | 40.0 | - | - | 10.0")
    assert len(table) == 4
    assert below_baseline(results, "c2kd") == ["en 59.5 < 60.0"]
