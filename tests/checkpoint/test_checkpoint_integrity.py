"""A checkpoint's weights carry a SHA-256 from the moment they are saved; a damaged file is refused, not used."""

import hashlib
import shutil

import pytest
import torch

from c2kd.checkpoint import CHECKSUM_FILE, WEIGHTS_FILE, load_checkpoint
from c2kd.errors import CheckpointError
from c2kd.train.run import train
from c2kd_testkit import assert_one_line_error, run_c2kd, tiny_config


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_dataset, tiny_text_models):
    """A run written by the trainer (best/ and last/ come from its own save path)."""
    out = tmp_path_factory.mktemp("integrity") / "run"
    return train(tiny_config(tiny_dataset, tiny_text_models["student"], out, epochs=1))


def zero_middle(path, count: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(count)
    path.write_bytes(bytes(data))


def test_the_trainer_records_a_checksum_that_sha256sum_confirms(run_folder):
    for name in ("best", "last"):
        recorded = (run_folder / name / CHECKSUM_FILE).read_text()
        actual = hashlib.sha256((run_folder / name / WEIGHTS_FILE).read_bytes()).hexdigest()
        assert recorded == f"{actual}  {WEIGHTS_FILE}\n"


@pytest.mark.parametrize("damage", ["zeroed", "truncated"])
def test_evaluate_refuses_a_damaged_checkpoint(run_folder, tiny_dataset, tmp_path, damage):
    copy = shutil.copytree(run_folder, tmp_path / "copy")
    weights = copy / "best" / WEIGHTS_FILE
    if damage == "zeroed":
        zero_middle(weights)
    else:
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    proc = run_c2kd("evaluate", "--checkpoint", copy, "--data", tiny_dataset)
    assert_one_line_error(proc, "checkpoint damaged", str(weights))


def test_resume_refuses_a_damaged_last_checkpoint(run_folder, tiny_dataset, tiny_text_models, tmp_path):
    copy = shutil.copytree(run_folder, tmp_path / "copy")
    zero_middle(copy / "last" / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="checkpoint damaged"):
        train(tiny_config(tiny_dataset, tiny_text_models["student"], copy, epochs=2))


def test_a_checkpoint_saved_before_checksums_still_loads(run_folder, tmp_path):
    copy = shutil.copytree(run_folder / "best", tmp_path / "old")
    (copy / CHECKSUM_FILE).unlink()
    model, _ = load_checkpoint(copy)
    reference, _ = load_checkpoint(run_folder / "best")
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # one that cannot be parsed at all is still refused with a message
    weights = copy / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="checkpoint damaged"):
        load_checkpoint(copy)
