"""Run folders have one owner, c2kd.checkpoint: training saves through it, it rebuilds models from the saved
config's ``model`` section alone, and one list says which settings are no part of a run's identity."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from c2kd.checkpoint import (
    CHECKSUM_FILE,
    CONFIG_FILE,
    EVALUATION_SETTINGS,
    METRICS_FILE,
    NOT_IDENTITY,
    RESUME_STATE_FILE,
    WEIGHTS_FILE,
    changed_settings,
    dump_config,
    load_checkpoint,
    load_resume_state,
    run_identity,
)
from c2kd.data.dataset import VideoTextDataset
from c2kd.errors import ConfigError
from c2kd.evaluation.evaluator import RetrievalEvaluator, flatten_metrics
from c2kd.experiments import config_hash
from c2kd.train.run import check_same_settings, train
from c2kd.train.trainer import Loop, Trainer
from c2kd_testkit import tiny_config


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_dataset, tiny_text_models):
    out = tmp_path_factory.mktemp("owner") / "run"
    return train(tiny_config(tiny_dataset, tiny_text_models["student"], out, epochs=2))


def test_best_loads_through_checkpoint_and_scores_what_training_recorded(run_folder, tiny_dataset):
    """best/metrics.json was computed on the model in memory; the reloaded best/ validates the same."""
    for name in ("best", "last"):
        files = {p.name for p in (run_folder / name).iterdir()}
        assert {WEIGHTS_FILE, CHECKSUM_FILE, CONFIG_FILE, METRICS_FILE, "text_backbone"} <= files
        assert (RESUME_STATE_FILE in files) == (name == "last")
    model, model_config = load_checkpoint(run_folder / "best")
    assert model_config.video.feature_dim == 16 and model_config.frame_encoder.name == "synthetic"
    split = VideoTextDataset(tiny_dataset).split("val")
    again = flatten_metrics(RetrievalEvaluator(split, directions=("t2v",))(model))
    recorded = json.loads((run_folder / "best" / METRICS_FILE).read_text())
    assert recorded.keys() == again.keys()
    for key, value in recorded.items():
        assert again[key] == pytest.approx(value, abs=1e-6), key


def test_loading_a_checkpoint_never_imports_the_training_code(run_folder):
    """The model section alone rebuilds the model: a fresh interpreter loads best/ without c2kd.train."""
    script = textwrap.dedent(f"""
        import sys
        from c2kd.checkpoint import load_checkpoint
        from c2kd.formats import checkpoint_frame_encoder
        model, config = load_checkpoint({str(run_folder)!r})
        assert [p.name for p in checkpoint_frame_encoder({str(run_folder)!r})] == ["synthetic"]
        print(sorted(m for m in sys.modules if m == "c2kd.train" or m.startswith("c2kd.train.")))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_trainer_saves_only_through_its_callback(tmp_path):
    """Every checkpoint goes through ``save``: best/ without, last/ with a resume state that resumes the run."""
    calls: list[tuple[str, bool]] = []

    def save(directory, model, metrics, resume_state):
        calls.append((directory.name, resume_state is not None))
        directory.mkdir(parents=True, exist_ok=True)
        from c2kd.checkpoint import save_weights

        save_weights(directory, model.state_dict())
        if resume_state is not None:
            torch.save(resume_state, directory / RESUME_STATE_FILE)

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    batches = [torch.randn(4, 2) for _ in range(2)]
    scores = iter([1.0, 2.0, 1.5])

    def fit(epochs):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = Trainer(model, lambda x: {"loss": model(x).pow(2).mean()}, batches, optimizer, None, tmp_path,
                          torch.device("cpu"), Loop(epochs=epochs, progress=False, tensorboard=False),
                          evaluate=lambda m: {"s": next(scores)}, monitor="s", save=save)
        return trainer.fit()

    fit(1)
    # the start, epoch 1 (better), last; each best/ beside its best-average/ (no floor: the same epoch)
    assert calls == [("best", False), ("best-average", False), ("best", False), ("best-average", False),
                     ("last", True)]
    assert load_resume_state(tmp_path / "last")["trainer"]["epoch"] == 1
    assert fit(2).epoch == 2  # resumed at epoch 1: one more epoch, one more evaluation
    assert calls[5:] == [("last", True)]


# -- run identity -----------------------------------------------------------------------------------------------
#: a changed value for each setting that is no part of a run's identity
OTHER_VALUES = {"out_dir": "elsewhere", "device": "cpu", "log_every": 3, "save_every_steps": 5, "tensorboard": True,
                "progress": True, "model.text.cache_dir": "cache", "data.num_workers": 2,
                "tie_policy": "optimistic", "missing_ranks": "present"}
#: ... and for some that are
IDENTITY_VALUES = {"loss.nce_temperature": 0.2, "optim.lr": 0.5, "seed": 7, "epochs": 3, "batch_size": 8,
                   "data.eval_languages": "[en]", "model.video.layers": 3, "monitor": "t2v/en/R@1"}


def test_the_examples_cover_every_setting_outside_the_identity():
    assert set(OTHER_VALUES) == set(NOT_IDENTITY)
    assert set(EVALUATION_SETTINGS) == {"tie_policy", "missing_ranks"}


def _dotted(key: str, value) -> dict:
    tree = value
    for part in reversed(key.split(".")):
        tree = {part: tree}
    return tree


def _changed(config, key: str, value):
    """``config`` with ``key=value`` set as a command-line override would set it."""
    from c2kd.train.config import TrainConfig, _merge, parse_overrides

    return TrainConfig.model_validate(_merge(config.model_dump(), parse_overrides([f"{key}={value}"])))


def _recipe_tree(dataset, text_model) -> dict:
    return {"data": {"path": str(dataset)}, "model": {"text": {"name": str(text_model)}}, "epochs": 1,
            "progress": False, "tensorboard": False}


@pytest.mark.parametrize("key", sorted(OTHER_VALUES))
def test_the_folder_hash_and_the_same_settings_check_ignore_the_same_settings(key, tiny_dataset, tiny_text_models,
                                                                              tmp_path):
    """Setting ``key`` keeps the reproduce runner's folder and passes the read-back check of train/run.py."""
    from c2kd.train.config import _merge

    tree = _recipe_tree(tiny_dataset, tiny_text_models["student"])
    value = OTHER_VALUES[key]
    assert config_hash(_merge(tree, _dotted(key, value))) == config_hash(tree)
    base = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "run")
    other = _changed(base, key, value)
    assert changed_settings(base, other, NOT_IDENTITY) == []
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CONFIG_FILE).write_text(dump_config(base))
    check_same_settings(other.model_copy(update={"out_dir": base.out_dir}), ignore=NOT_IDENTITY)


@pytest.mark.parametrize("key", sorted(IDENTITY_VALUES))
def test_settings_of_the_identity_change_the_folder_and_are_refused(key, tiny_dataset, tiny_text_models, tmp_path):
    from c2kd.train.config import _merge, parse_overrides

    tree = _recipe_tree(tiny_dataset, tiny_text_models["student"])
    override = f"{key}={IDENTITY_VALUES[key]}"
    assert config_hash(_merge(tree, parse_overrides([override]))) != config_hash(tree)
    base = tiny_config(tiny_dataset, tiny_text_models["student"], tmp_path / "run")
    other = _changed(base, key, IDENTITY_VALUES[key])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CONFIG_FILE).write_text(dump_config(base))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_same_settings(other, ignore=NOT_IDENTITY)


def test_the_folder_hash_of_existing_recipes_is_unchanged():
    """Work folders of earlier versions are found again: this tree hashed to 546304ab35 before the identity moved."""
    tree = {"epochs": 1, "device": "cpu", "data": {"path": "/d", "num_workers": 2}, "loss": {"alpha": 0.5}}
    assert config_hash(tree) == "546304ab35"
    assert run_identity(tree) == {"epochs": 1, "data": {"path": "/d"}, "loss": {"alpha": 0.5}}
