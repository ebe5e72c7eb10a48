"""The frame-compatibility rule of c2kd.encoders.frames, against hand-written cases."""

import pytest

from c2kd.encoders.frames import (
    FEATURE_OPTIONS,
    FRAME_PRESETS,
    FrameEncoderSpec,
    check_frame_encoder,
    comparable,
    describe_parts,
    joined,
    mismatches,
    parts_of,
    store_frame_encoder,
)
from c2kd.errors import ConfigError

CLIP = FrameEncoderSpec(name="clip-vit-b32", dim=512, options={"model": "openai/clip-vit-base-patch32"})
FOCUS = FrameEncoderSpec(name="vit-s14-focus", dim=384, options={"pool": "cls", "model": "/home/a/.cache/cut.onnx"})


def test_several_parts_are_recorded_as_one_concat_spec_and_read_back():
    record = joined([CLIP, FOCUS])
    assert record is not None and record.name == "concat" and record.dim == 896
    assert parts_of(record) == [CLIP, FOCUS]
    assert joined([CLIP]) == CLIP and parts_of(CLIP) == [CLIP]
    assert joined([]) is None and parts_of(None) == []
    assert describe_parts([CLIP, FOCUS]) == (
        "concat of clip-vit-b32 (512-d, model=openai/clip-vit-base-patch32) + vit-s14-focus (384-d, "
        "model=/home/a/.cache/cut.onnx, pool=cls) (896-d)")


def test_a_store_records_its_parts():
    meta = {"encoder": "concat", "dim": 896,
            "extractor": {"parts": [CLIP.model_dump(mode="json"), FOCUS.model_dump(mode="json")], "fps": 1}}
    assert store_frame_encoder(meta) == [CLIP, FOCUS]
    assert store_frame_encoder({"encoder": "clip-vit-b32", "dim": 512,
                                "extractor": {"model": "openai/clip-vit-base-patch32", "batch_size": 8}}) == [CLIP]
    assert store_frame_encoder({"dim": 512}) == []


def test_only_the_options_that_identify_features_are_compared():
    moved = FOCUS.model_copy(update={"options": {"pool": "cls", "model": "/other/machine/cut.onnx"}})
    assert comparable(moved) == comparable(FOCUS) == FrameEncoderSpec(name="vit-s14-focus", dim=384,
                                                                      options={"pool": "cls"})
    assert mismatches([FOCUS], [moved]) == []
    mean = FOCUS.model_copy(update={"options": {"pool": "mean"}})
    assert mismatches([FOCUS], [mean]) == ["pool='mean' instead of 'cls'"]
    text_frames = FrameEncoderSpec(name="packaged-muse", dim=512, options={"anything": 1})
    assert comparable(text_frames) == text_frames  # not an encoder c2kd runs: every option counts


def test_parts_are_compared_in_order_and_named():
    other = CLIP.model_copy(update={"options": {"model": "laion/clip"}})
    assert mismatches([CLIP, FOCUS], [CLIP]) == ["1 parts instead of 2"]
    assert mismatches([CLIP, FOCUS], [FOCUS, CLIP]) == [
        "part 1: encoder 'vit-s14-focus' instead of 'clip-vit-b32'", "part 1: 384-d instead of 512-d",
        "part 2: encoder 'clip-vit-b32' instead of 'vit-s14-focus'", "part 2: 512-d instead of 384-d"]
    assert mismatches([CLIP, FOCUS], [other, FOCUS]) == [
        "part 1: model='laion/clip' instead of 'openai/clip-vit-base-patch32'"]
    with pytest.raises(ConfigError, match=r"store X: features from clip-vit-b32 \(512-d, model=laion/clip\), but "
                                          r"the model reads clip-vit-b32 .*Fix it\."):
        check_frame_encoder([CLIP], [other], "store X", fix="Fix it.")
    check_frame_encoder([], [other], "store X")  # nothing recorded: nothing to check
    check_frame_encoder([CLIP], [], "store X")


def test_each_presets_identity_is_what_its_factory_takes():
    """The rule reads the presets alone; it agrees with what each registered builder accepts and records."""
    from c2kd.features.encoders.base import FRAME_ENCODERS, parameters

    for name, factory in FRAME_ENCODERS.items():
        if name == "concat":
            continue
        taken = {k for k in FEATURE_OPTIONS if k in parameters(factory) and k != "preprocess"}
        assert set(FRAME_PRESETS[name].identity) == taken, name


def test_registering_an_encoder_needs_its_preset_and_adds_none(monkeypatch):
    """A builder registers under an existing preset's name; it never adds a preset, so the rule (which reads the
    presets alone) answers the same whatever was imported."""
    from c2kd.encoders.frame_presets import FramePreset
    from c2kd.features.encoders.base import FRAME_ENCODERS, build_frame_encoder, register_frame_encoder

    before = dict(FRAME_PRESETS)
    with pytest.raises(ValueError, match=r"'my-resnet' is not a preset of FRAME_PRESETS .*add its FramePreset"):
        register_frame_encoder("my-resnet")
    with pytest.raises(ValueError, match=r"'s3d' is a preset that cannot be extracted"):
        register_frame_encoder("s3d")
    with pytest.raises(ValueError, match=r"'siglip2-base-patch16-256' is a shortcut for 'siglip'"):
        register_frame_encoder("siglip2-base-patch16-256")
    assert before == FRAME_PRESETS
    monkeypatch.setitem(FRAME_PRESETS, "my-resnet", FramePreset(8, "a ResNet of mine", identity=("model", "pool")))
    with FRAME_ENCODERS.scoped():
        @register_frame_encoder("my-resnet")
        def build(model: str = "r50.onnx", pool: str = "mean", device: str | None = None):
            raise NotImplementedError(f"{model} {pool}")

        with pytest.raises(NotImplementedError, match=r"r50\.onnx max"):
            build_frame_encoder("my-resnet", pool="max")
    spec = FrameEncoderSpec(name="my-resnet", dim=8, options={"model": "a", "pool": "mean", "batch": 3})
    assert comparable(spec).options == {"model": "a", "pool": "mean"}


def test_a_shortcut_preset_builds_its_encoder_with_its_options():
    """``--encoder siglip2-base-patch16-256`` is ``--encoder siglip --model google/siglip2-base-patch16-256``: the
    same factory, the model fixed (given options win), and the features recorded under ``siglip``."""
    from c2kd.features.encoders.base import _builder, frame_encoder_names

    for name, preset in FRAME_PRESETS.items():
        if preset.runs:
            factory, fixed = _builder(name)
            assert factory is _builder(preset.runs)[0] is not None and fixed == dict(preset.options), name
            assert name in frame_encoder_names() and set(preset.options) <= set(FRAME_PRESETS[preset.runs].identity)
    assert FRAME_PRESETS["siglip2-so400m-patch14-384"].options == {"model": "google/siglip2-so400m-patch14-384"}


def test_settings_of_a_dict_option_are_compared_one_by_one():
    pre = {"size": 224, "mode": "crop", "resample": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3}
    a = FrameEncoderSpec(name="onnx", dim=6, options={"model": "/m.onnx", "preprocess": pre})
    b = a.model_copy(update={"options": {"model": "/m.onnx", "preprocess": {**pre, "size": 256, "mode": "pad"}}})
    assert mismatches([a], [b]) == ["preprocess mode='pad' instead of 'crop'", "preprocess size=256 instead of 224"]
    assert mismatches([a], [a]) == []


def test_only_an_unambiguous_size_names_a_preset():
    from c2kd.encoders.frames import presets_of_size

    assert presets_of_size(384) == ["vit-s14-focus"] and presets_of_size(512) == ["clip-vit-b32"]
    assert len(presets_of_size(768)) == 3 and presets_of_size(7) == []
