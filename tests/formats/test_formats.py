"""Checkpoint formats: each folder records its format, one ``load_model`` opens any registered format, and a
new format is one registered class."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from c2kd import formats
from c2kd.checkpoint import FORMAT as DUAL_ENCODER
from c2kd.checkpoint import load_checkpoint
from c2kd.errors import CheckpointError
from c2kd.formats import (
    FORMAT_FILE,
    CheckpointFormat,
    checkpoint_fingerprint,
    find_checkpoint,
    load_model,
    register_format,
)
from c2kd.train.run import train
from c2kd_testkit import tiny_config


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_dataset, tiny_text_models):
    out = tmp_path_factory.mktemp("formats") / "run"
    return train(tiny_config(tiny_dataset, tiny_text_models["student"], out, epochs=1))


def test_a_checkpoint_records_its_format(run_folder):
    for name in ("best", "last"):
        assert json.loads((run_folder / name / FORMAT_FILE).read_text()) == {"format": DUAL_ENCODER, "version": 1}


def test_a_run_folder_stands_for_best_then_last(run_folder, tmp_path):
    assert find_checkpoint(run_folder)[0] == run_folder / "best"
    copy = shutil.copytree(run_folder, tmp_path / "run")
    shutil.rmtree(copy / "best")
    assert find_checkpoint(copy)[0] == copy / "last"


def test_a_folder_written_before_formats_were_recorded_loads_the_same(run_folder, tmp_path):
    old = shutil.copytree(run_folder / "best", tmp_path / "old")
    (old / FORMAT_FILE).unlink()
    texts = ["a dog runs", "ein Hund rennt"]
    reference = load_checkpoint(run_folder / "best")[0].eval().embed_texts(texts)
    assert find_checkpoint(old)[1].name == DUAL_ENCODER  # known by its weights file
    assert torch.equal(load_model(old).eval().embed_texts(texts), reference)
    assert checkpoint_fingerprint(old) == checkpoint_fingerprint(run_folder / "best")


def test_an_unknown_or_damaged_format_record_is_refused_by_name(run_folder, tmp_path):
    copy = shutil.copytree(run_folder / "best", tmp_path / "copy")
    (copy / FORMAT_FILE).write_text('{"format": "c2kd-from-the-future"}')
    with pytest.raises(CheckpointError, match=r"c2kd-from-the-future.*upgrade c2kd"):
        load_model(copy)
    (copy / FORMAT_FILE).write_text("{")
    with pytest.raises(CheckpointError, match=f"{FORMAT_FILE} cannot be read"):
        load_model(copy)
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        load_model(tmp_path / "nothing-here")


def test_other_weights_give_another_fingerprint(run_folder):
    assert checkpoint_fingerprint(run_folder / "best") == checkpoint_fingerprint(run_folder)
    best = load_checkpoint(run_folder / "best")[0].state_dict()
    last = load_checkpoint(run_folder / "last")[0].state_dict()
    differ = any(not torch.equal(best[k], last[k]) for k in best)
    assert (checkpoint_fingerprint(run_folder / "best") != checkpoint_fingerprint(run_folder / "last")) == differ


class MeanOfFrames:
    """A format of this test: the mean of unit frames against a fixed random text table (no weights file)."""

    training = False
    embed_dim = feature_dim = 4
    frame_encoder = None

    def __init__(self, seed: int):
        self.table = torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(seed)),
                                                   dim=1)

    def train(self, mode: bool = True):
        return self

    def eval(self):
        return self

    def embed_texts(self, texts, batch_size=256, max_tokens=None):
        return self.table[[len(t) % 8 for t in texts]]

    def embed_videos(self, features, batch_size=256):
        means = [np.asarray(f, np.float32).mean(0) for f in features]
        return torch.nn.functional.normalize(torch.tensor(np.stack(means)), dim=1)


def test_a_new_format_is_one_registered_class(tmp_path, monkeypatch):
    monkeypatch.setattr(formats.FORMATS, "_entries", dict(formats.known_formats()))

    @register_format
    class TableFormat(CheckpointFormat):
        name = "test-table"
        marker = "table.json"
        title = "a text table"

        def load(self, directory: Path, device="cpu", persist_cache=True):
            return MeanOfFrames(json.loads((directory / self.marker).read_text())["seed"])

        def frame_encoder(self, directory: Path):
            return None

        def fingerprint(self, directory: Path) -> str:
            return (directory / self.marker).read_text().strip()[:16]

    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "table.json").write_text('{"seed": 3}')
    formats.record_format(folder, "test-table")
    model = load_model(folder)
    assert model.embed_dim == 4 and torch.equal(model.embed_texts(["abc"]), MeanOfFrames(3).table[[3]])
    with pytest.raises(CheckpointError, match="is a text table, which cannot be trained on"):
        load_checkpoint(folder)
