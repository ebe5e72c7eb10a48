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


class MeanOfFrames(formats.Checkpointed):
    """A format of this test: the mean of unit frames against a fixed random text table (no weights file)."""

    checkpoint_format = "test-table"
    training = False
    embed_dim = feature_dim = 4
    frame_encoder: tuple = ()

    def __init__(self, seed: int):
        self.seed = seed
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


@pytest.fixture
def scratch_formats():
    with formats.FORMATS.scoped():  # the test's format is forgotten after it
        yield


def test_a_new_format_is_one_registered_class(tmp_path, scratch_formats):

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

        def verify(self, directory: Path) -> None:
            json.loads((directory / self.marker).read_text())

        def save(self, model, directory: Path) -> Path:
            directory.mkdir(parents=True)
            (directory / self.marker).write_text(json.dumps({"seed": model.seed}))
            formats.record_format(directory, self.name)
            return directory

    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "table.json").write_text('{"seed": 3}')
    formats.record_format(folder, "test-table")
    model = load_model(folder)
    assert model.embed_dim == 4 and torch.equal(model.embed_texts(["abc"]), MeanOfFrames(3).table[[3]])
    with pytest.raises(CheckpointError, match="is a text table, which cannot be trained on"):
        load_checkpoint(folder)
    assert model.fingerprint() == '{"seed": 3}'
    copy = MeanOfFrames(5).save(tmp_path / "copy")
    assert torch.equal(load_model(copy).table, MeanOfFrames(5).table)


def _embeddings(model, seed: int = 0):
    texts = ["a dog runs", "ein Hund rennt", "un chien court"]
    frames = [np.random.default_rng(seed + i).normal(size=(5, model.feature_dim)).astype(np.float32) for i in range(3)]
    model.eval()
    return model.embed_texts(texts), model.embed_videos(frames)


def test_a_loaded_model_knows_its_fingerprint_and_saves_itself(run_folder, tmp_path):
    model = load_model(run_folder)
    assert model.fingerprint() == checkpoint_fingerprint(run_folder)
    saved = model.save(tmp_path / "copy")
    assert find_checkpoint(saved)[1].name == DUAL_ENCODER
    assert model.fingerprint() == checkpoint_fingerprint(saved)
    back = load_model(saved)
    for ours, theirs in zip(_embeddings(model), _embeddings(back), strict=True):
        assert torch.equal(ours, theirs)
    assert back.frame_encoder == model.frame_encoder


def test_a_model_made_in_memory_has_no_fingerprint_until_saved(run_folder, tmp_path):
    from c2kd.model import build_model

    made = build_model(load_checkpoint(run_folder)[1])
    with pytest.raises(CheckpointError, match=r"save it with model.save\(DIR\)"):
        made.fingerprint()
    made.save(tmp_path / "made")
    assert made.fingerprint() == checkpoint_fingerprint(tmp_path / "made")


def test_a_late_fusion_made_in_memory_saves_as_a_fused_checkpoint(run_folder, tmp_path):
    from c2kd.late_fusion import LateFusion

    first, second = load_model(run_folder / "best"), load_model(run_folder / "last")
    with torch.no_grad():  # a second member with other weights
        for p in second.parameters():
            p.mul_(0.5).add_(0.01)
    fusion = LateFusion([first, second], [1.0, 3.0], [(0, first.feature_dim)] * 2)
    saved = fusion.save(tmp_path / "fused")
    back = load_model(saved)
    assert type(back) is LateFusion and back.weights == [1.0, 3.0]
    assert fusion.fingerprint() == checkpoint_fingerprint(saved)
    texts, videos = _embeddings(back)
    # the weighted mean of the members' cosines, computed from the members alone (weights 1/4 and 3/4)
    (t1, v1), (t2, v2) = _embeddings(first), _embeddings(second)
    expected = 0.25 * (t1 @ v1.T) + 0.75 * (t2 @ v2.T)
    torch.testing.assert_close(texts @ videos.T, expected, atol=1e-5, rtol=0)
