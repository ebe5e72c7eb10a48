"""End to end on CPU with random-config HF models: teachers, a C2KD student, resume, evaluation JSON."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from c2kd.checkpoint import load_checkpoint
from c2kd.data.dataset import VideoTextDataset
from c2kd.errors import ConfigError
from c2kd.evaluation.evaluator import RetrievalEvaluator
from c2kd.train.config import load_config
from c2kd.train.run import finished_run_metrics, train
from c2kd_testkit import tiny_config


def test_c2kd_student_trains_and_reports_every_language(teachers, tiny_dataset, tiny_text_models, tmp_path):
    cfg = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "c2kd", stage="c2kd",
                      loss__alpha=0.5, epochs=3, teachers__checkpoints=f"[{teachers[0]},{teachers[1]}]")
    out = train(cfg)
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 3 and all(h["train/distill"] > 0 for h in history)
    results = json.loads((out / "test_metrics.json").read_text())
    assert set(results["t2v"]) == {"en", "de", "fr", "cs", "average"}
    assert set(results["t2v"]["en"]) == {"R@1", "R@5", "R@10", "MedR", "MeanR"}
    assert results["protocol"]["missing_videos"] == 2
    model, saved = load_checkpoint(out)
    assert saved.frame_encoder is not None and saved.frame_encoder.name == "synthetic"  # from the store
    assert saved == cfg.model.model_copy(update={"frame_encoder": saved.frame_encoder})
    expected = cfg.model_copy(update={"model": saved})
    assert load_config(out / "config.yaml") == load_config(out / "best" / "config.yaml") == expected
    # evaluating the checkpoint again gives the same numbers (deterministic, best/ is what was tested)
    split = VideoTextDataset(tiny_dataset).split("test")
    again = RetrievalEvaluator(split)(model)
    assert again["t2v"]["average"]["R@1"] == pytest.approx(results["t2v"]["average"]["R@1"])


@pytest.mark.parametrize("cache", ["true", "false"], ids=["cached-teachers", "live-teachers"])
def test_structure_distillation_student_trains(teachers, tiny_dataset, tiny_text_models, tmp_path, cache):
    """loss.distillation=structure (after MCKD) trains with cached or live teachers; its weights are read."""
    cfg = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "structure", stage="c2kd",
                      loss__alpha=0.5, loss__distillation="structure", loss__structure__video_weight=0.5,
                      epochs=2, teachers__cache=cache, teachers__checkpoints=f"[{teachers[0]},{teachers[1]}]")
    assert cfg.loss.structure.video_weight == 0.5
    out = train(cfg)
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and all(h["train/distill"] > 0 for h in history)
    assert load_config(out / "config.yaml").loss.distillation == "structure"


@pytest.mark.parametrize("words", [{}, {"model__text__words__buckets": 64},
                                   {"model__text__words__buckets": 64, "optim__average": 0.8}],
                         ids=["dense", "with-word-bag", "with-weight-average"])
def test_resumed_run_equals_uninterrupted_run(tiny_dataset, tiny_text_models, tmp_path, words):
    """Kill a run mid-epoch (after a checkpoint), rerun: the final weights equal an uninterrupted run's (with a
    word bag too, whose sparse optimizer state is saved beside the dense one, and with a weight average, which
    is what best/ holds)."""
    common = dict(epochs=2, seed=5, data__val_split="null", data__test_split="null", **words)
    full = train(tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "full", **common))

    from c2kd.train import trainer as trainer_module

    original_step = trainer_module.Trainer._step
    calls = {"n": 0}

    def dying_step(self, batch):
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 2, third batch (4 batches per epoch)
            raise KeyboardInterrupt("killed")
        return original_step(self, batch)

    trainer_module.Trainer._step = dying_step
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "killed",
                              save_every_steps=1, **common))
    finally:
        trainer_module.Trainer._step = original_step
    state = torch.load(tmp_path / "killed" / "last" / "trainer_state.pt", weights_only=False)
    assert state["trainer"]["epoch"] == 1 and state["trainer"]["batch_in_epoch"] == 2
    resumed = train(tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "killed",
                                save_every_steps=1, **common))
    for folder in ("last", "best"):
        a, b = (load_file(str(run / folder / "model.safetensors")) for run in (full, resumed))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-6), (folder, key)
    if "optim__average" in words:  # best/ holds the average, last/ the raw weights
        best, last = (load_file(str(full / folder / "model.safetensors")) for folder in ("best", "last"))
        assert any(not torch.equal(best[key], last[key]) for key in best)
    # a finished run is not trained again
    before = (resumed / "last" / "model.safetensors").stat().st_mtime_ns
    train(tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "killed", **common))
    assert (resumed / "last" / "model.safetensors").stat().st_mtime_ns == before


def test_a_run_is_never_continued_or_read_back_with_other_settings(tiny_dataset, tiny_text_models, tmp_path):
    common = dict(epochs=1, data__val_split="null")
    config = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "run", **common)
    assert finished_run_metrics(config) is None
    out = train(config)
    first = json.loads((out / "test_metrics.json").read_text())
    assert finished_run_metrics(config) == first
    # presentation settings may differ
    quiet = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "run", log_every=3, **common)
    assert finished_run_metrics(quiet) == first
    other = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "run", optim__lr=0.5, **common)
    with pytest.raises(ConfigError, match=r"optim\.lr: 0\.001 -> 0\.5"):
        finished_run_metrics(other)
    with pytest.raises(ConfigError, match="another out_dir"):
        train(other)
    # more epochs continue the run, but its old results are not read back as the new run's
    longer = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "run", **{**common, "epochs": 2})
    with pytest.raises(ConfigError, match="epochs: 1 -> 2"):
        finished_run_metrics(longer)
    written = (out / "test_metrics.json").stat().st_mtime_ns
    train(longer)
    assert len(json.loads((out / "history.json").read_text())) == 2
    assert (out / "test_metrics.json").stat().st_mtime_ns != written  # tested again after epoch 2
    assert finished_run_metrics(longer) == json.loads((out / "test_metrics.json").read_text())


def _with_other_train_captions(dataset, out):
    """A copy of ``dataset`` whose non-English *train* captions are replaced by other words (val/test unchanged)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(dataset, out)
    rows = pq.read_table(out / "captions.parquet").to_pylist()
    for row in rows:
        if row["split"] == "train" and row["lang"] != "en":
            row["text"] = " ".join(reversed(row["text"].split())) + " xyzzy"
    pq.write_table(pa.Table.from_pylist(rows), out / "captions.parquet")
    return out


def _trained_weights(dataset, text_model, out, stage):
    train(tiny_config(dataset, text_model, out, stage=stage, epochs=1))
    return load_file(out / "last" / "model.safetensors")


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_zero_shot_trains_on_english_only(tiny_dataset, tiny_text_models, tmp_path):
    """Other words in the non-English train captions change nothing in a zero-shot run (the batches held English
    captions only), and do change a translate-train run on the same data (the change reaches training)."""
    other = _with_other_train_captions(tiny_dataset, tmp_path / "other")
    student = tiny_text_models["student"]
    zero_shot = [_trained_weights(d, student, tmp_path / f"zs-{i}", "zero-shot")
                 for i, d in enumerate([tiny_dataset, other])]
    assert _same_weights(*zero_shot)
    translate = [_trained_weights(d, student, tmp_path / f"tt-{i}", "translate-train")
                 for i, d in enumerate([tiny_dataset, other])]
    assert not _same_weights(*translate)


def _reference_nce(scores, tau):
    """Mean over rows of -log softmax(S / tau)[i, i], plus the same over columns."""
    n = scores.shape[0]
    rows = [-(scores[i, i] / tau - torch.logsumexp(scores[i] / tau, 0)) for i in range(n)]
    cols = [-(scores[i, i] / tau - torch.logsumexp(scores[:, i] / tau, 0)) for i in range(n)]
    return sum(rows) / n + sum(cols) / n


def _reference_kd(student, teacher, tau):
    """KL(softmax(T / tau) || softmax(S / tau)) averaged over rows, plus the same over columns."""
    def kl(p_logits, q_logits):
        p, log_p, log_q = p_logits.softmax(0), p_logits.log_softmax(0), q_logits.log_softmax(0)
        return (p * (log_p - log_q)).sum()

    n = student.shape[0]
    rows = sum(kl(teacher[i] / tau, student[i] / tau) for i in range(n)) / n
    cols = sum(kl(teacher[:, i] / tau, student[:, i] / tau) for i in range(n)) / n
    return rows + cols


@pytest.mark.parametrize("english_nce_weight", [None, 2.0], ids=["without-the-key", "2"])
def test_config_pooler_temperatures_alpha_and_english_weight_reach_the_loss(
        teachers, tiny_dataset, tiny_text_models, tmp_path, english_nce_weight):
    """A run built from a config computes the loss those settings define (distinct values, so a swap shows); a
    config without ``english_nce_weight`` counts English NCE once, as every language, as the paper's Eq. 7 does."""
    from c2kd.train.run import prepare_run

    given = {} if english_nce_weight is None else {"loss__english_nce_weight": english_nce_weight}
    english_nce_weight = 1.0 if english_nce_weight is None else english_nce_weight  # the paper's
    cfg = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "wired", stage="c2kd",
                      loss__alpha=0.3, loss__nce_temperature=0.07, loss__kd_temperature=0.2, **given,
                      teachers__pooler="max", teachers__checkpoints=f"[{teachers[0]},{teachers[1]}]")
    parts = prepare_run(cfg)
    parts.model.eval()
    parts.pairs.set_epoch(0)
    batch = parts.pairs.collate([parts.pairs[i] for i in [5, 2, 9, 0, 7]])
    with torch.no_grad():
        terms = parts.task(batch)
        student = parts.task.student_scores(batch)
        raw = parts.task.teacher_scores.matrices(batch, list(student))  # language -> [M, B, B]
    expected = torch.zeros(())
    for lang, scores in student.items():
        pooled = torch.stack([raw[lang][m] for m in range(raw[lang].shape[0])]).max(dim=0).values
        weight = english_nce_weight if lang == "en" else 1.0
        expected = expected + 0.3 * weight * _reference_nce(scores, 0.07) + 0.7 * _reference_kd(scores, pooled, 0.2)
    assert set(student) == {"en", "de", "fr", "cs"}
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_a_second_run_on_the_same_out_dir_is_refused_while_the_first_runs(tiny_dataset, tiny_text_models,
                                                                           tmp_path):
    import subprocess
    import sys
    import time

    from c2kd.checkpoint import dump_config
    from c2kd_testkit import assert_one_line_error, run_c2kd

    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(dump_config(tiny_config(tiny_dataset, tiny_text_models["student"], out, epochs=500)))
    first = subprocess.Popen([sys.executable, "-c", "from c2kd.cli import main; main()", "train", "--config",
                              str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "config.yaml").exists():  # written once the run holds its out_dir
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.2)
        second = run_c2kd("train", "--config", config)
        assert_one_line_error(second, str(out), "in progress", f"pid {first.pid}")
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait()
