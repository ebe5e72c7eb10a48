"""Any ONNX image model as a frame encoder through onnxruntime, and the ONNX surgery that cuts a model at an inner
tensor (how the packaged ViT-S/14 gives its token features)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, require
from c2kd.features.encoders.base import FrameEncoder, register_frame_encoder
from c2kd.features.preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess
from c2kd.io import atomic_path


def _providers(device: str | None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in (None, "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device and device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError("device cuda asked for, but onnxruntime has no CUDA provider; install "
                              "onnxruntime-gpu or use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def pool_tokens(output: np.ndarray, pool: str) -> np.ndarray:
    """Turn a model output into one vector per image.

    ``pool``: "cls" (token 0 of [N, T, D]), "mean" (mean of tokens 1.. of [N, T, D], or of H, W of
    [N, C, H, W]), "none" (output must already be [N, D]), "auto" (cls for tokens, mean for maps).

    Shape:
        output [N, D] | [N, T, D] | [N, C, H, W] | [N, D, 1, 1] -> [N, D]
    """
    if output.ndim == 2:
        return output
    if output.ndim == 4 and output.shape[2:] == (1, 1):
        return output[:, :, 0, 0]
    if pool == "none":
        raise ConfigError(f"model output has shape {output.shape}; choose pool=cls or pool=mean")
    if output.ndim == 3:
        if pool in ("cls", "auto"):
            return output[:, 0]
        if pool == "mean":
            return output[:, 1:].mean(axis=1) if output.shape[1] > 1 else output[:, 0]
    if output.ndim == 4 and pool in ("mean", "auto"):
        return output.mean(axis=(2, 3))
    raise ConfigError(f"cannot pool a model output of shape {output.shape} with pool={pool!r}")


class OnnxFrameEncoder(FrameEncoder):
    """Any ONNX image model through onnxruntime: NCHW float32 input, one output pooled to [N, D]."""

    def __init__(self, model: str | os.PathLike, preprocess: ImagePreprocess | None = None, output: str | None = None,
                 pool: str = "auto", name: str = "onnx", device: str | None = None, threads: int = 0,
                 batch_size: int = 32):
        ort = require("onnxruntime", "video", "ONNX frame encoders")
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"ONNX model {path} not found; pass --model PATH.onnx")
        self.name = name
        self.model_path = path.resolve()  # recorded by its absolute path: stores name one file alike
        self.pool = pool
        self.batch_size = int(batch_size)
        self.preprocess = preprocess or ImagePreprocess()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=_providers(device))
        except Exception as exc:
            raise ConfigError(f"{path}: onnxruntime cannot load this model ({exc})") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ConfigError(f"{path}: expected one image input, the model has {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        fixed = [d for d in inputs[0].shape[2:] if isinstance(d, int)]  # H, W when the model fixes them
        if fixed and any(d != self.preprocess.size for d in fixed):
            raise ConfigError(f"{path}: the model takes images of {'x'.join(map(str, inputs[0].shape[2:]))} pixels, "
                              f"not {self.preprocess.size}; use --option size={fixed[0]}")
        outputs = [o.name for o in self.session.get_outputs()]
        if output is not None and output not in outputs:
            raise ConfigError(f"{path}: no output named {output!r}; it has {outputs}")
        self.output_name = output or outputs[0]
        probe = np.zeros((1, 3, self.preprocess.size, self.preprocess.size), np.float32)
        self.dim = int(self.encode_pixels(probe).shape[1])

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(pixels, np.float32)})
        return pool_tokens(np.asarray(out), self.pool).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": str(self.model_path), "output": self.output_name, "pool": self.pool}


def _per_channel(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    """An option's (R, G, B) values; any other count is a usage error naming the option."""
    if len(values) != 3:
        raise ConfigError(f"onnx option {name}: give 3 values (R, G, B) or a preset name, got {list(values)}")
    red, green, blue = (float(v) for v in values)
    return red, green, blue


@register_frame_encoder("onnx")
def _build_onnx(model: str | None = None, size: int = 224, mode: str = "crop", resample: str = "bicubic",
                mean: Sequence[float] | str = "imagenet", std: Sequence[float] | str | None = None,
                output: str | None = None, pool: str = "auto", device: str | None = None, threads: int = 0,
                batch_size: int = 32) -> FrameEncoder:
    if model is None:
        raise ConfigError("the onnx frame encoder needs --model PATH.onnx")
    presets = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, str) and value not in presets:
            raise ConfigError(f"onnx option {name}: unknown preset {value!r}; use one of {sorted(presets)} "
                              "or three numbers (R, G, B)")
    if isinstance(mean, str):
        mean, default_std = presets[mean]
        std = default_std if std is None else std
    if std is None or isinstance(std, str):
        std = presets[std or "imagenet"][1]
    pre = ImagePreprocess(size=int(size), mode=mode, resample=resample, mean=_per_channel("mean", mean),
                          std=_per_channel("std", std))
    return OnnxFrameEncoder(model, pre, output=output, pool=pool, device=device, threads=int(threads),
                            batch_size=int(batch_size))


def cut_onnx_at(source: str | os.PathLike, tensor: str, out: str | os.PathLike,
                shape: Sequence[int | str] | None = None) -> Path:
    """Save a copy of an ONNX model whose only output is the inner ``tensor``, without the nodes after it.

    Written atomically (a killed build leaves no half file).
    """
    onnx = require("onnx", "video", "cutting an ONNX model")
    model = onnx.load(str(source))
    produced = {name for node in model.graph.node for name in node.output}
    if tensor not in produced:
        raise ConfigError(f"{source}: no tensor named {tensor!r} in the graph")
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, shape))
    needed, keep = {tensor}, []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del model.graph.node[:]
    model.graph.node.extend(keep)
    initializers = [init for init in model.graph.initializer if init.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    onnx.checker.check_model(model)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return Path(out)
