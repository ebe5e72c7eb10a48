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



def test_the_backbone_mix_settings_load_under_their_old_names(tmp_path):
    """``model.text.fuse``, ``fused_start`` and ``fused_ridge`` (before the backbone mix was told apart from fused
    checkpoints) load as ``mix``, ``mix_start`` and ``mix_ridge``, from a file or an override; saving writes the new
    names only."""
    import yaml

    from c2kd.encoders.text.tower import TextEncoderConfig
    from c2kd.train.config import dump_config

    old = tmp_path / "old.yaml"
    old.write_text("data: {path: x}\nmodel:\n  text: {name: a, head: aligned, fuse: [b, c], fused_start: random,"
                   " fused_ridge: 0.5}\n")
    cfg = load_config(old)
    assert (cfg.model.text.mix, cfg.model.text.mix_start, cfg.model.text.mix_ridge) == (["b", "c"], "random", 0.5)
    assert cfg == load_config(None, ["data.path=x", "model.text.name=a", "model.text.head=aligned",
                                     "model.text.mix=[b,c]", "model.text.mix_start=random", "model.text.mix_ridge=0.5"])
    assert load_config(None, ["data.path=x", "model.text.fuse=[d]"]).model.text.mix == ["d"]
    assert load_config(old, ["model.text.fuse=[d]"]).model.text.mix == ["d"]  # an override still wins
    assert TextEncoderConfig.model_validate({"fuse": ["b"]}) == TextEncoderConfig(mix=["b"])
    saved = yaml.safe_load(dump_config(cfg))["model"]["text"]
    assert saved["mix"] == ["b", "c"] and saved["mix_start"] == "random" and saved["mix_ridge"] == 0.5
    assert not {"fuse", "fused_start", "fused_ridge"} & set(saved)
    assert load_config(None, ["data.path=x", "model.text.fuse=[b]", "model.text.mix=[b]"]).model.text.mix == ["b"]
    with pytest.raises(ConfigError, match=r"fuse is the old name of mix"):
        load_config(None, ["data.path=x", "model.text.fuse=[b]", "model.text.mix=[c]"])
