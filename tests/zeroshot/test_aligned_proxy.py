"""Training-free checkpoints on the packaged models: the Multi30K proxy (USE text vs USE "frames", e5 mixed in)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from c2kd.cli import app
from c2kd.errors import ConfigError

TEXTS = ["ein Mann spricht", "a dog runs on the beach", "une femme lit un livre"]


@pytest.fixture(scope="module")
def proxy_checkpoint(tmp_path_factory, muse, e5):
    from c2kd.zeroshot import aligned_checkpoint

    out = tmp_path_factory.mktemp("aligned") / "proxy"
    return aligned_checkpoint(out, text="packaged-muse", mix=["packaged-e5-small"], frame_encoder="packaged-muse",
                              backbones=[muse, e5])


def test_proxy_checkpoint_scores_with_use_alone_and_reloads(proxy_checkpoint, muse):
    from c2kd.checkpoint import load_checkpoint

    model, config = load_checkpoint(proxy_checkpoint)
    text = config.text
    assert text.head == "aligned" and text.mix == ["packaged-e5-small"] and not text.trainable
    assert config.video.aligned and config.video.feature_dim == text.embed_dim == 512
    assert config.frame_encoder.name == "packaged-muse" and config.frame_encoder.dim == 512
    expected = muse.encode(TEXTS)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(model.eval().embed_texts(TEXTS).numpy(), expected, atol=1e-5)
    # video side: the mean of the normalised "frames" (USE vectors of the item's other descriptions)
    frames = muse.encode(TEXTS)
    mean = (frames / np.linalg.norm(frames, axis=1, keepdims=True)).mean(0)
    got = model.embed_videos([frames]).numpy()[0]
    np.testing.assert_allclose(got, mean / np.linalg.norm(mean), atol=1e-5)


def test_proxy_stores_are_checked_and_video_files_refused(proxy_checkpoint, muse, tmp_path):
    from c2kd.data.features import FeatureStoreWriter
    from c2kd.search.building import build_index

    frames = muse.encode(TEXTS)
    for name in ("packaged-muse", "clip-vit-b32"):
        with FeatureStoreWriter(tmp_path / name, 512, encoder=name, fps=1.0) as writer:
            writer.add("item1", frames, np.arange(3, dtype=np.float32))
    build_index(proxy_checkpoint, tmp_path / "packaged-muse", tmp_path / "index", progress=False)
    # CLIP features given to the proxy model, and video files: both refusals say plainly that it reads the text
    # proxy, not video, and give the command for a model that searches video
    with pytest.raises(ConfigError, match="packaged-muse") as refused:
        build_index(proxy_checkpoint, tmp_path / "clip-vit-b32", tmp_path / "bad", progress=False)
    result = CliRunner().invoke(app, ["extract", str(tmp_path), "--checkpoint", str(proxy_checkpoint), "--out",
                                      str(tmp_path / "x")])
    assert isinstance(result.exception, ConfigError) and "cannot compute" in str(result.exception)
    for message in (str(refused.value), str(result.exception)):
        assert "Multi30K text proxy" in message and "cannot search video files" in message, message
        assert "c2kd model aligned --text mclip-vit-b32 --frame-encoder clip-vit-b32" in message, message


def test_command_refuses_a_pair_not_known_to_share_a_space_and_one_of_another_size(tmp_path, muse, e5):
    """Issue 36: `model aligned --text packaged-e5-small --frame-encoder vit-s14-focus` wrote a model (both 384-d)
    whose scores meant nothing. A pair c2kd does not know is refused, naming the aligned choices; the user's word
    (--i-know-they-are-aligned) is taken, and sizes must still agree."""
    from c2kd_testkit import assert_one_line_error, run_c2kd

    proc = run_c2kd("model", "aligned", "--text", "packaged-e5-small", "--frame-encoder", "vit-s14-focus",
                    "--out", tmp_path / "x")
    assert_one_line_error(proc, "not known to embed", "--text mclip-vit-b32 --frame-encoder clip-vit-b32",
                          "--i-know-they-are-aligned")
    assert not (tmp_path / "x").exists()
    result = CliRunner().invoke(app, ["model", "aligned", "--text", "packaged-e5-small", "--frame-encoder",
                                      "packaged-muse", "--out", str(tmp_path / "x"), "--i-know-they-are-aligned"])
    assert isinstance(result.exception, ConfigError)
    assert "384-d" in str(result.exception) and "512-d" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_a_declared_pair_is_recorded_and_shown_by_the_server(tmp_path, muse, e5, clips):
    from fastapi.testclient import TestClient

    from c2kd.checkpoint import read_model_config
    from c2kd.search.building import build_index
    from c2kd.serve.app import ServeSettings, create_app
    from c2kd.zeroshot import aligned_checkpoint
    from c2kd_testkit import run_c2kd

    known = aligned_checkpoint(tmp_path / "known", text="packaged-muse", frame_encoder="packaged-muse")
    assert read_model_config(known).alignment == "known"
    declared = aligned_checkpoint(tmp_path / "declared", text="packaged-e5-small", frame_encoder="vit-s14-focus",
                                  declared_aligned=True)
    assert read_model_config(declared).alignment == "declared"
    store = tmp_path / "store"
    extracted = run_c2kd("extract", clips["video9770"], "--checkpoint", declared, "--out", store, "--fps", "0.5")
    assert extracted.returncode == 0, extracted.stderr
    index = build_index(declared, store, tmp_path / "idx", progress=False)
    with TestClient(create_app(ServeSettings(index=index))) as client:
        notice = client.get("/api/health").json()["notice"]
    assert "declared aligned by its maker" in notice


@pytest.mark.parametrize("option", ["--mix", "--fuse"])  # --fuse: the backbone mix's old name, still read
def test_command_writes_the_proxy_checkpoint(tmp_path, muse, e5, option):
    result = CliRunner().invoke(app, ["model", "aligned", "--text", "packaged-muse", option, "packaged-e5-small",
                                      "--frame-encoder", "packaged-muse", "--out", str(tmp_path / "ck")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert ("--fuse is now --mix" in result.output) == (option == "--fuse")
    from c2kd.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tmp_path / "ck")
    assert [part.name for part in model.text.backbone.parts] == ["packaged-muse", "packaged-e5-small"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0  # heads, residuals: trainable later
    assert all(not p.requires_grad for p in model.text.backbone.parameters())
    last = model.text.head.residual[-1].weight
    torch.testing.assert_close(last, torch.zeros_like(last))


def test_the_help_names_the_backbone_mix_option_and_hides_its_old_name():
    result = CliRunner().invoke(app, ["model", "aligned", "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--mix" in result.output and "--fuse" not in result.output
