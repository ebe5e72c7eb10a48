"""The siglip frame encoder against transformers' own pipeline (image processor + get_image_features, normalised),
on frames decoded from the two real clips, with random-config SigLIP, SigLIP 2 and SigLIP 2 NaFlex models written
offline (tests/siglipkit.py)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from siglipkit import make_tiny_siglip

from c2kd.data.features import FeatureStore
from c2kd.encoders.frames import FRAME_PRESETS, mismatches, parts_of
from c2kd.errors import ConfigError
from c2kd.features.decode import sample_frames
from c2kd.features.encoders import build_frame_encoder, encoder_spec
from c2kd.features.preprocess import CLIP_MEAN, CLIP_STD, NaFlexPreprocess, naflex_size

KINDS = ("siglip", "siglip2", "siglip2-naflex")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("siglip")
    return {kind: make_tiny_siglip(root / kind, kind=kind, seed=i) for i, kind in enumerate(KINDS)}


@pytest.fixture(scope="module")
def frames(clips):
    """Full-size frames of both real clips (320x240), as c2kd's decoder samples them at 1 frame/s."""
    images = []
    for path in clips.values():
        decoded, _ = sample_frames(path)
        images.extend(decoded[:4])
    return images


def reference(folder, images):
    """transformers' own pipeline: the model's image processor, ``get_image_features``, divided by its norm."""
    import torch
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(folder).eval()
    inputs = AutoImageProcessor.from_pretrained(folder)(images=images, return_tensors="pt")
    with torch.no_grad():
        pooled = model.get_image_features(**inputs)
    pooled = pooled if isinstance(pooled, torch.Tensor) else pooled.pooler_output
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_features_equal_transformers_pipeline(models, frames, clips, kind):
    encoder = build_frame_encoder("siglip", model=str(models[kind]), device="cpu", batch_size=3)
    expected = reference(models[kind], frames)
    out = encoder.encode(frames)  # batches of 3 mix the two videos
    assert out.shape == (len(frames), 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    # as c2kd extract runs it: the decoder resizes each frame for the encoder, the encoder finishes the batch
    resized = []
    for path in clips.values():
        decoded, _ = sample_frames(path, transform=encoder.preprocess.resize)
        resized.extend(decoded[:4])
    np.testing.assert_allclose(encoder.encode(resized), expected, atol=1e-5)


def _changed(preprocess, change):
    return dataclasses.replace(preprocess, **change)


@pytest.mark.parametrize("kind,change", [
    ("siglip", {"mode": "crop"}),                       # crop instead of squash
    ("siglip2", {"mode": "crop"}),
    ("siglip", {"resample": "bilinear"}),               # another resample
    ("siglip2", {"resample": "bicubic"}),
    ("siglip2", {"mean": CLIP_MEAN, "std": CLIP_STD}),  # another mean/std
    ("siglip2-naflex", {"resample": "bicubic"}),
    ("siglip2-naflex", {"mean": (0.485, 0.456, 0.406)}),
    ("siglip2-naflex", {"max_patches": 8}),             # another patch budget (3 x 4 patches -> 2 x 3)
])
def test_the_exactness_check_fails_when_the_preprocessing_changes(models, frames, kind, change):
    """The comparison above is sensitive: each of these changes moves the features far beyond its tolerance."""
    encoder = build_frame_encoder("siglip", model=str(models[kind]), device="cpu")
    expected = reference(models[kind], frames)
    encoder.preprocess = _changed(encoder.preprocess, change)
    assert np.abs(encoder.encode(frames) - expected).max() > 1e-3
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(encoder.encode(frames), expected, atol=1e-5)


def test_the_naflex_size_is_transformers_size_and_is_stable():
    from transformers.models.siglip2.image_processing_pil_siglip2 import get_image_size_for_max_num_patches

    rng = random.Random(0)
    for _ in range(2000):
        height, width = rng.randint(1, 2500), rng.randint(1, 2500)
        patch, budget = rng.choice([8, 14, 16]), rng.choice([16, 64, 256, 576, 1024])
        size = naflex_size(height, width, patch, budget)
        assert size == get_image_size_for_max_num_patches(height, width, patch, budget), (height, width)
        assert size[0] % patch == 0 and size[1] % patch == 0 and size[0] * size[1] <= budget * patch * patch
        assert naflex_size(*size, patch, budget) == size  # a resized frame keeps its size: workers may resize
    assert naflex_size(240, 320, 16, 256) == (224, 288)


def test_naflex_patches_are_the_image_in_row_order():
    pre = NaFlexPreprocess(resample="nearest", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), patch_size=2,
                           max_patches=8)
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)  # 2 x 3 patches: fits, not resized
    pixels, mask, shapes = pre.patches([image])
    assert shapes.tolist() == [[2, 3]] and mask.tolist() == [[1] * 6 + [0] * 2]
    second = image[0:2, 2:4].reshape(-1) / 255.0  # row 0, column 1: its 2 x 2 pixels, RGB last
    np.testing.assert_allclose(pixels[0, 1], second, atol=1e-7)
    np.testing.assert_allclose(pixels[0, 3], image[2:4, 0:2].reshape(-1) / 255.0, atol=1e-7)
    assert not pixels[0, 6:].any()


def test_the_record_names_the_model_and_the_patch_budget(models, tmp_path):
    fixed = build_frame_encoder("siglip", model=str(models["siglip2"]), device="cpu")
    naflex = build_frame_encoder("siglip", model=str(models["siglip2-naflex"]), device="cpu")
    assert fixed.describe()["model"] == str(models["siglip2"].resolve()) and "max_num_patches" not in fixed.describe()
    assert naflex.describe()["max_num_patches"] == 16
    fewer = build_frame_encoder("siglip", model=str(models["siglip2-naflex"]), device="cpu", max_num_patches=9)
    assert fewer.preprocess.max_patches == 9
    assert mismatches(parts_of(encoder_spec(naflex)), parts_of(encoder_spec(fewer))) == [
        "max_num_patches=9 instead of 16", "preprocess max_num_patches=9 instead of 16"]
    assert mismatches(parts_of(encoder_spec(fixed)), parts_of(encoder_spec(naflex)))  # another model
    # a shortcut preset builds the same encoder: its features are recorded as siglip's
    shortcut = build_frame_encoder("siglip2-base-patch16-256", model=str(models["siglip2"]), device="cpu")
    assert encoder_spec(shortcut) == encoder_spec(fixed) and shortcut.name == "siglip"
    assert FRAME_PRESETS["siglip"].identity == ("model", "max_num_patches")


def test_bad_models_and_options_are_one_clear_error(models, tiny_clip, tmp_path):
    with pytest.raises(ConfigError, match=r"siglip frame encoder needs --model: a hub id"):
        build_frame_encoder("siglip")
    with pytest.raises(ConfigError, match=r"is a 'clip\w*' model, not SigLIP or SigLIP 2; pass a SigLIP checkpoint"):
        build_frame_encoder("siglip", model=str(tiny_clip), device="cpu")
    with pytest.raises(ConfigError, match=r"max_num_patches=64: .* fixed size; the patch budget is an option of "
                                          r"NaFlex models"):
        build_frame_encoder("siglip", model=str(models["siglip"]), device="cpu", max_num_patches=64)
    with pytest.raises(ConfigError, match=r"folder .* not found"):
        build_frame_encoder("siglip", model=str(tmp_path / "nowhere" / "model"))
    with pytest.raises(ConfigError, match=r"dtype='half': use one of float32, float16, bfloat16"):
        build_frame_encoder("siglip", model=str(models["siglip"]), device="cpu", dtype="half")


def test_bfloat16_runs_and_stays_close(models, frames):
    full = build_frame_encoder("siglip", model=str(models["siglip2"]), device="cpu")
    half = build_frame_encoder("siglip", model=str(models["siglip2"]), device="cpu", dtype="bfloat16")
    out = half.encode(frames[:3])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, full.encode(frames[:3]), atol=5e-2)


def test_extract_the_real_clips_with_a_siglip2_folder(models, clips, tmp_path):
    """``c2kd extract`` end to end with decode workers: the store holds transformers' features of each sampled
    second; the shortcut preset with the same model adds to that store (same features), NaFlex may not."""
    from c2kd_testkit import assert_one_line_error, run_c2kd

    out = tmp_path / "store"
    folder = models["siglip2"]
    run = run_c2kd("extract", *clips.values(), "--out", out, "--encoder", "siglip", "--encoder-option",
                   f"model={folder}", "--workers", "1", "--no-progress", "--device", "cpu")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 extracted (25 frames" in run.stdout
    store = FeatureStore(out)
    assert store.meta["encoder"] == "siglip" and store.meta["extractor"]["model"] == str(folder.resolve())
    for video, path in clips.items():
        decoded, times = sample_frames(path)
        rows = store[video]  # stores keep float16: equal to transformers' features up to that rounding
        assert rows.dtype == np.float16
        np.testing.assert_allclose(rows, reference(folder, decoded).astype(np.float16), atol=1e-3, rtol=0)
        np.testing.assert_allclose(store.times(video), times, atol=1e-6)
    again = run_c2kd("extract", *clips.values(), "--out", out, "--encoder", "siglip2-base-patch16-256", "--model",
                     folder, "--workers", "0", "--no-progress", "--device", "cpu")
    assert again.returncode == 0 and "2 already done" in again.stdout, again.stdout + again.stderr
    other = run_c2kd("extract", *clips.values(), "--out", out, "--encoder", "siglip", "--model",
                     models["siglip2-naflex"], "--workers", "0", "--no-progress", "--device", "cpu")
    assert_one_line_error(other, "this store holds features of siglip", "model=", "max_num_patches",
                          f"--encoder siglip --model {folder.resolve()}")


def test_extract_help_lists_the_siglip_encoders():
    from typer.testing import CliRunner

    from c2kd.cli import app

    result = CliRunner().invoke(app, ["extract", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for name in ("siglip", "siglip2-base-patch16-256", "siglip2-so400m-patch14-384", "siglip2-base-patch16-naflex",
                 "siglip-base-patch16-256-multilingual", "--encoder-option"):
        assert name in result.output, name


def test_processor_settings_c2kd_cannot_reproduce_are_refused():
    from transformers import SiglipImageProcessor

    from c2kd.features.encoders.siglip import preprocess_of

    square = {"size": {"height": 32, "width": 32}}
    assert preprocess_of(SiglipImageProcessor(**square, resample=3), "m").resample == "bicubic"
    with pytest.raises(ConfigError, match=r"m: image processor resamples with PIL filter 1"):
        preprocess_of(SiglipImageProcessor(**square, resample=1), "m")  # LANCZOS
    with pytest.raises(ConfigError, match=r"reads square sizes"):
        preprocess_of(SiglipImageProcessor(size={"height": 32, "width": 48}), "m")
    with pytest.raises(ConfigError, match=r"does not scale pixels by 1/255"):
        preprocess_of(SiglipImageProcessor(**square, rescale_factor=1 / 127.5), "m")
    crop = SiglipImageProcessor(**square)
    crop.do_center_crop = True
    with pytest.raises(ConfigError, match=r"crops; SigLIP models squash the whole frame"):
        preprocess_of(crop, "m")
