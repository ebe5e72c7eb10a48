"""The quickstart's run plan: every trained run starts from the off-the-shelf aligned pair, teachers read English."""

from __future__ import annotations

from pathlib import Path

import pytest

from c2kd.experiments import in_order
from c2kd.model import ModelConfig
from c2kd.quickstart import (
    FRAME_ENCODER,
    OFF_THE_SHELF,
    TEXT_BACKBONES,
    QuickstartSettings,
    below_baseline,
    quickstart_plan,
    results_table,
    run_configs,
)
from c2kd.train.config import TrainConfig


def test_the_three_runs_start_from_the_aligned_pair(tmp_path: Path):
    settings = QuickstartSettings(epochs=3, batch_size=32, lr=1e-3, device="cpu", alpha=0.5, teachers="both")
    cfgs = run_configs(tmp_path / "data", tmp_path / "runs", tmp_path / "cache", settings)
    assert list(cfgs) == ["teacher-en", "zero-shot", "translate-train", "c2kd"]
    parsed = {name: TrainConfig.model_validate(c) for name, c in cfgs.items()}
    for cfg in parsed.values():
        text, video = cfg.model.text, cfg.model.video
        assert not text.trainable and text.cache_dir == str(tmp_path / "cache")
        assert text.head == "aligned" and [text.name, *text.mix] == list(TEXT_BACKBONES)
        assert text.name == FRAME_ENCODER  # the aligned pair: USE text against USE frames
        assert text.words is not None and text.words.buckets == settings.word_buckets  # and a word bag
        assert video.aligned and video.feature_dim == video.embed_dim == text.embed_dim == 512
        assert cfg.keep_every_language
    c2kd = parsed["c2kd"]
    assert c2kd.stage == "c2kd" and c2kd.teachers.language == "english" and c2kd.teachers.pooler == "mean"
    assert c2kd.teachers.checkpoints == [str(tmp_path / "runs" / OFF_THE_SHELF), cfgs["teacher-en"]["out_dir"]]
    assert parsed["teacher-en"].data.eval_languages == ["en"]  # selected on English: it only reads English
    assert parsed["zero-shot"].stage == "zero-shot" and parsed["translate-train"].stage == "translate-train"


def test_the_bench_sweep_settings_give_the_runs_they_always_gave():
    """Hand-written: the runs of seed 1, C2KD alpha 0.2 with both teachers pooled by max, as the bench sweeps them.

    Their settings (so their folders' identity) must not move, or finished runs would be trained again.
    """
    settings = QuickstartSettings(epochs=10, seed=1, alpha=0.2, teachers="both", pooler="max",
                                  word_buckets=2**17, progress=False)
    runs = Path("/q/runs")
    cfgs = run_configs(Path("/q/data"), runs / "seed1", Path("/q/cache"), settings, teachers_dir=runs)
    model = {"text": {"name": "packaged-muse", "mix": ["packaged-e5-small"], "head": "aligned", "embed_dim": 512,
                      "trainable": False, "cache_dir": "/q/cache", "words": {"buckets": 131072}},
             "video": {"feature_dim": 512, "embed_dim": 512, "aligned": True, "layers": 0}}

    def run(folder: str, stage: str, **extra) -> dict:
        return {"stage": stage, "data": {"path": "/q/data", **extra.pop("data", {})}, "seed": 1, "epochs": 10,
                "batch_size": 128, "device": "auto", "out_dir": f"/q/runs/seed1/{folder}", "tensorboard": False,
                "optim": {"lr": 3e-4, "lr_decay": 0.9}, "model": model, "progress": False, **extra}

    for cfg in cfgs.values():  # the model section as it validates (what a run folder's identity reads)
        cfg["model"] = ModelConfig.model_validate(cfg["model"])
    model = ModelConfig.model_validate(model)
    assert cfgs == {
        "teacher-en": run("teacher-en", "zero-shot", data={"eval_languages": ["en"]}),
        "zero-shot": run("zero-shot", "zero-shot"),
        "translate-train": run("translate-train", "translate-train"),
        "c2kd": run("c2kd-max-alpha0.2", "c2kd", loss={"alpha": 0.2},
                    teachers={"checkpoints": ["/q/runs/off-the-shelf", "/q/runs/seed1/teacher-en"],
                              "pooler": "max", "language": "english"}),
    }
    plan = quickstart_plan(Path("/q/data"), runs / "seed1", Path("/q/cache"), settings, teachers_dir=runs)
    assert [run.name for run in in_order(plan.values(), only=["c2kd"])] == ["teacher-en", "c2kd"]
    without = run_configs(Path("/q/data"), runs, Path("/q/cache"), QuickstartSettings())
    assert list(without) == ["zero-shot", "translate-train", "c2kd"]
    assert without["c2kd"]["out_dir"] == "/q/runs/c2kd-off-the-shelf-alpha0.2"
    assert without["c2kd"]["teachers"]["checkpoints"] == ["/q/runs/off-the-shelf"]
    alone = run_configs(Path("/q/data"), runs, Path("/q/cache"), QuickstartSettings(teachers="teacher-en"))
    assert list(alone) == ["teacher-en", "zero-shot", "translate-train", "c2kd"]
    assert alone["c2kd"]["out_dir"] == "/q/runs/c2kd-teacher-en-alpha0.2"
    assert alone["c2kd"]["teachers"]["checkpoints"] == ["/q/runs/teacher-en"]
    with pytest.raises(ValueError, match="choose one of"):
        run_configs(Path("/q/data"), runs, Path("/q/cache"), QuickstartSettings(teachers="mean"))


@pytest.mark.parametrize("teachers, folders, trained", [
    ("e5-pair", ["/q/runs/e5-pair"], False),
    ("pairs", ["/q/runs/off-the-shelf", "/q/runs/e5-pair"], False),
    ("all", ["/q/runs/off-the-shelf", "/q/runs/seed2/teacher-en", "/q/runs/e5-pair"], True),
])
def test_the_e5_pair_teaches_from_the_shared_folder_and_names_the_run(teachers, folders, trained):
    settings = QuickstartSettings(seed=2, teachers=teachers, pooler="max")
    cfgs = run_configs(Path("/q/data"), Path("/q/runs/seed2"), Path("/q/cache"), settings,
                       teachers_dir=Path("/q/runs"))
    assert ("teacher-en" in cfgs) is trained
    assert cfgs["c2kd"]["teachers"]["checkpoints"] == folders
    setting = teachers if len(folders) == 1 else f"{teachers}-max"
    assert cfgs["c2kd"]["out_dir"] == f"/q/runs/seed2/c2kd-{setting}-alpha0.2"
    assert cfgs["c2kd"]["data"] == {"path": "/q/data"}  # the student reads the USE frames; the e5 pair its own


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


def test_the_table_shows_each_trained_run_as_trained_and_guarded_with_the_languages_that_blocked_it():
    from c2kd.experiments import compared_rows, guard_note
    from c2kd.quickstart import gain_over

    def res(en, de, **extra):
        metrics = {lang: dict.fromkeys(("R@1", "R@5", "R@10"), value)
                   for lang, value in (("en", en), ("de", de), ("average", (en + de) / 2))}
        return {"t2v": metrics, "v2t": metrics, **extra}

    start = res(60.0, 40.0)
    results = {
        OFF_THE_SHELF: start,
        # guarded: the start (English fell at the better epoch 3); as trained: epoch 3
        "translate-train": {**start, "selection": {"epoch": 0, "kept_start": True, "blocked_by": ["en"]},
                            "as_trained": res(59.0, 55.0, selection={"epoch": 3})},
        "c2kd": {**res(61.0, 52.0), "selection": {"epoch": 2, "kept_start": False, "blocked_by": []},
                 "as_trained": res(61.0, 52.0, selection={"epoch": 2})},
    }
    rows = compared_rows(results)
    assert list(rows) == [OFF_THE_SHELF, "translate-train", "translate-train, guarded (start kept; blocked by en)",
                          "c2kd", "c2kd, guarded (epoch 2, as trained)"]
    table = results_table(rows).splitlines()
    assert table[2].startswith(f"| {OFF_THE_SHELF} | 60.0 | 40.0 |")
    assert table[3].startswith("| translate-train | 59.0 | 55.0 |")  # as trained: what it learned
    assert table[4].startswith("| translate-train, guarded (start kept; blocked by en) | 60.0 | 40.0 |")
    assert len(table) == 7
    note = guard_note(results)
    assert "translate-train epoch 3" in note and "c2kd epoch 2" in note
    assert "translate-train handed back the untrained start" in note
    # C2KD's gain is read against translate-train as trained, not against its guarded start
    assert gain_over(results, "c2kd", "translate-train") == "en +2.0, de -3.0, average -0.5"
    assert below_baseline(results, "translate-train") == ["en 59.0 < 60.0"]


def test_a_rerun_with_other_settings_keeps_the_earlier_student_named_by_its_settings(tmp_path: Path):
    from c2kd.io import write_json
    from c2kd.quickstart import earlier_students, previous_results, student_label

    first = {"alpha": 0.2, "teachers": "off-the-shelf", "pooler": "mean", "epochs": 15, "lr": 3e-4,
             "batch_size": 128, "seed": 0, "max_train": 2000, "max_val": 500, "max_test": None}
    assert student_label(first) == "c2kd (alpha 0.2, teachers off-the-shelf)"
    assert student_label({**first, "teachers": "all", "pooler": "zmean"}) == "c2kd (alpha 0.2, teachers all, pooler zmean)"
    write_json(tmp_path / "results.json", {"results": {"c2kd": {"t2v": "first"}}, "settings": first})
    previous = previous_results(tmp_path / "results.json")
    assert earlier_students(previous, first) == {}  # the same settings again: its own row, nothing kept twice
    second = {**first, "alpha": 0.5, "teachers": "both"}
    kept = earlier_students(previous, second)
    assert kept == {"c2kd (alpha 0.2, teachers off-the-shelf)": {"settings": first, "results": {"t2v": "first"}}}
    # a third run keeps both earlier students; one that differs only in epochs is named by them
    write_json(tmp_path / "results.json", {"results": {"c2kd": {"t2v": "second"}}, "settings": second,
                                           "earlier": list(kept.values())})
    third = {**first, "epochs": 30}
    kept = earlier_students(previous_results(tmp_path / "results.json"), third)
    assert list(kept) == ["c2kd (alpha 0.5, teachers both)", "c2kd (alpha 0.2, teachers off-the-shelf, epochs 15)"]
    (tmp_path / "results.json").write_text("{not json")
    assert previous_results(tmp_path / "results.json") is None and previous_results(tmp_path / "none.json") is None
