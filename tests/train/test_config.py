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
    with pytest.raises(ConfigError, match=r"teachers\.checkpoints"):
        load_config(None, ["data.path=x", "stage=c2kd", "loss.alpha=0.5"])
    with pytest.raises(ConfigError, match="alpha"):
        load_config(None, ["data.path=x", "stage=translate-train", "loss.alpha=0.5"])
    with pytest.raises(ConfigError, match="English only"):
        load_config(None, ["data.path=x", "stage=zero-shot", "data.languages=[de]"])
    with pytest.raises(ConfigError, match="Unknown language"):
        load_config(None, ["data.path=x", "data.languages=[xx]"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent.yaml")


def test_a_config_saved_before_the_fidelity_options_still_loads(tmp_path):
    """Configs beside older checkpoints lack loss.english_nce_weight and missing_ranks: they get the defaults."""
    import yaml

    from c2kd.train.config import dump_config

    tree = yaml.safe_load(dump_config(load_config(None, ["data.path=/data"])))
    del tree["loss"]["english_nce_weight"], tree["missing_ranks"]
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(tree))
    config = load_config(saved)
    assert config.loss.english_nce_weight == 1.0 and config.missing_ranks == "gallery"

