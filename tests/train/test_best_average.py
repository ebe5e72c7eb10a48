"""The trainer keeps two choices: ``best/`` (guarded by the floor) and ``best-average/`` (the monitor alone)."""

import json

import pytest
import torch
from safetensors.torch import save_file

from c2kd.checkpoint import RESUME_STATE_FILE, WEIGHTS_FILE, load_checkpoint
from c2kd.data.dataset import VideoTextDataset
from c2kd.evaluation.evaluator import RetrievalEvaluator
from c2kd.train.run import train
from c2kd.train.trainer import Loop, Trainer
from c2kd_testkit import tiny_config

#: validation of the start, then of each epoch: epoch 1 is best on average but English fell below the start;
#: epoch 2 is better than the start everywhere; epoch 3 is worse than epoch 1 on average and German fell
SCRIPT = [{"avg": 50.0, "en": 60.0, "de": 40.0},
          {"avg": 55.0, "en": 59.0, "de": 51.0},
          {"avg": 53.0, "en": 61.0, "de": 45.0},
          {"avg": 54.0, "en": 60.0, "de": 39.0}]


def saver(directory, model, metrics, resume_state):
    """Write what the trainer hands over: the validation metrics, the weights and, for last/, the resume state."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    save_file(model.state_dict(), str(directory / WEIGHTS_FILE))
    if resume_state is not None:
        torch.save(resume_state, directory / RESUME_STATE_FILE)


def scripted_trainer(out, epochs, scripted):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    batches = [torch.randn(4, 2) for _ in range(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, lambda x: {"loss": model(x).pow(2).mean()}, batches, optimizer, None, out,
                   torch.device("cpu"), Loop(epochs=epochs, progress=False, tensorboard=False),
                   evaluate=lambda m: next(scripted), monitor="avg", save=saver, floor=["en", "de"])


def saved_metrics(out, name):
    return json.loads((out / name / "metrics.json").read_text())


def test_a_best_epoch_blocked_by_the_floor_is_kept_in_best_average(tmp_path):
    state = scripted_trainer(tmp_path, 3, iter(SCRIPT)).fit()
    assert (state.best_epoch, state.best_metric) == (2, 53.0)
    assert (state.best_average_epoch, state.best_average_metric) == (1, 55.0)
    assert state.blocked == ["en"]
    assert saved_metrics(tmp_path, "best") == SCRIPT[2]
    assert saved_metrics(tmp_path, "best-average") == SCRIPT[1]


def test_without_a_floor_both_choices_are_the_same_epoch(tmp_path):
    trainer = scripted_trainer(tmp_path, 3, iter(SCRIPT))
    trainer.floor = ()
    state = trainer.fit()
    assert state.best_epoch == state.best_average_epoch == 1 and state.blocked == []
    assert saved_metrics(tmp_path, "best") == saved_metrics(tmp_path, "best-average") == SCRIPT[1]


def test_a_resumed_run_keeps_both_choices(tmp_path):
    """Two epochs, then a third after a resume: the same two folders and records as one run of three epochs."""
    scripted = iter(SCRIPT)
    scripted_trainer(tmp_path, 2, scripted).fit()
    assert saved_metrics(tmp_path, "best-average") == SCRIPT[1]
    state = scripted_trainer(tmp_path, 3, scripted).fit()  # resumes from last/: validates epoch 3 only
    assert next(scripted, None) is None
    assert (state.best_epoch, state.best_average_epoch, state.blocked) == (2, 1, ["en"])
    assert saved_metrics(tmp_path, "best") == SCRIPT[2]
    assert saved_metrics(tmp_path, "best-average") == SCRIPT[1]


def test_a_run_records_and_tests_both_choices(tiny_dataset, tiny_text_models, tmp_path):
    """test_metrics.json: best/ at the top with how it was chosen, best-average/ under ``as_trained``; the epochs
    agree with the validation history and each result is that checkpoint's own test score."""
    cfg = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "run", epochs=3, **{"optim.lr": 3e-2})
    out = train(cfg)
    saved = json.loads((out / "test_metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    state = torch.load(out / "last" / RESUME_STATE_FILE, weights_only=False)["trainer"]
    monitor = saved["selection"]["monitor"]
    start = state["start_metrics"]
    scores = [start[monitor]] + [h[f"val/{monitor}"] for h in history]
    best_average = max(range(len(scores)), key=lambda e: (scores[e], -e))
    assert saved["as_trained"]["selection"]["epoch"] == best_average
    langs = cfg.data.eval_languages or VideoTextDataset(tiny_dataset).languages
    per_lang = [start] + [{k[4:]: v for k, v in h.items() if k.startswith("val/")} for h in history]
    allowed = [e for e in range(len(scores))
               if all(per_lang[e][monitor.replace("average", lang)] >= start[monitor.replace("average", lang)]
                      for lang in langs if monitor.replace("average", lang) in start)]
    guarded = max(allowed, key=lambda e: (scores[e], -e))
    assert saved["selection"]["epoch"] == guarded and saved["selection"]["guarded"]
    if guarded != best_average:
        assert saved["selection"]["blocked_by"], "a blocked epoch names the languages that blocked it"
    test = VideoTextDataset(tiny_dataset).split("test")
    for name, result in (("best", saved), ("best-average", saved["as_trained"])):
        model, _ = load_checkpoint(out / name)
        expected = RetrievalEvaluator(test)(model.eval())["t2v"]["average"]["R@1"]
        assert result["t2v"]["average"]["R@1"] == pytest.approx(expected)
