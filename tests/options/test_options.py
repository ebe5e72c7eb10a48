"""Command-line values every command parses the same way: code lists, KEY=VALUE pairs, encoder options, devices."""

import pytest
import torch

from c2kd.errors import ConfigError
from c2kd.options import comma_list, key_value, key_value_pairs, parse_encoder_options, scalar
from c2kd.runtime import resolve_device


def test_comma_lists_drop_blanks_and_spaces():
    assert comma_list(" en, de,,fr ") == ["en", "de", "fr"]
    assert comma_list(None) is None and comma_list("") is None


def test_key_value_pairs_refuse_malformed_and_repeated_keys():
    assert key_value_pairs(["train=a.pkl", " test = b.pkl"], "split") == {"train": "a.pkl", "test": "b.pkl"}
    with pytest.raises(ConfigError, match="split 'train' must look like KEY=VALUE"):
        key_value_pairs(["train"], "split")
    with pytest.raises(ConfigError, match="'train' is given twice"):
        key_value_pairs(["train=a", "train=b"], "split")


def test_encoder_options_parse_numbers_and_lists():
    assert parse_encoder_options(["size=256", "mean=0.5,0.5,0.5", "batch-size=8", "pool=mean"]) == {
        "size": 256, "mean": [0.5, 0.5, 0.5], "batch_size": 8, "pool": "mean"}
    with pytest.raises(ConfigError, match="must look like key=value"):
        parse_encoder_options(["size"])


def test_key_value_splits_at_the_first_equals_and_refuses_a_missing_key():
    assert key_value(" model = a=b ", "--option") == ("model", "a=b")
    assert key_value("name=", "--option") == ("name", "")
    for bad in ("name", "=3", " =x"):
        with pytest.raises(ConfigError, match=f"--option '{bad}' must look like key=value"):
            key_value(bad, "--option")
    assert [scalar(t) for t in ("3", "0.5", "1e-3", "mean", "")] == [3, 0.5, 1e-3, "mean", ""]


def test_devices_resolve_in_one_place():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="'gpu0' is not a device torch knows"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:1")
