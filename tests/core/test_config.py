import pytest

from c2kd.errors import ConfigError
from c2kd.train.config import load_config, parse_overrides


def test_overrides_are_typed_and_nested():
    assert parse_overrides(["loss.alpha=0.5", "data.languages=[en,cz]", "tensorboard=false"]) == {
        "loss": {"alpha": 0.5}, "data": {"languages": ["en", "cz"]}, "tensorboard": False}
    cfg = load_config(None, ["data.path=x", "data.languages=[en,cz]", "epochs=3"])
    assert cfg.data.languages == ["en", "cs"] and cfg.epochs == 3


def test_misspelt_key_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {path: x}\nloss: {alpah: 0.5}\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*loss.alpah"):
        load_config(path)


def test_stage_rules():
    with pytest.raises(ConfigError, match="teachers.checkpoints"):
        load_config(None, ["data.path=x", "stage=c2kd", "loss.alpha=0.5"])
    with pytest.raises(ConfigError, match="alpha"):
        load_config(None, ["data.path=x", "stage=translate-train", "loss.alpha=0.5"])
    with pytest.raises(ConfigError, match="English only"):
        load_config(None, ["data.path=x", "stage=zero-shot", "data.languages=[de]"])
    with pytest.raises(ConfigError, match="Unknown language"):
        load_config(None, ["data.path=x", "data.languages=[xx]"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent.yaml")
