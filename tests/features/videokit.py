"""Helpers of the extraction tests: write small real videos with PyAV, make a tiny random CLIP model."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np


def colour(k: int) -> tuple[int, int, int]:
    """A distinct, codec-friendly solid colour for second ``k``."""
    return ((37 * k + 20) % 236 + 10, (91 * k + 128) % 236 + 10, (53 * k + 60) % 236 + 10)


def write_video(path: Path, times: Sequence[float], colours: Sequence[tuple[int, int, int]],
                size: tuple[int, int] = (64, 48), fmt: str | None = None, rate: int = 10,
                options: dict[str, str] | None = None) -> Path:
    """Encode solid-colour frames shown at ``times`` (seconds; variable intervals allowed) with H.264.

    ``fmt="h264"`` writes a raw elementary stream, whose frames carry no timestamps.
    """
    import av

    container = av.open(str(path), "w", format=fmt, options=options or {})
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    if fmt is None:
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
    for t, col in zip(times, colours):
        image = np.empty((size[1], size[0], 3), np.uint8)
        image[:] = col
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if fmt is None:
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def write_colour_seconds(path: Path, seconds: int, rate: int = 10, size: tuple[int, int] = (64, 48),
                         **kw) -> Path:
    """A ``seconds`` long video at ``rate`` frame/s whose colour is ``colour(k)`` during second ``k``."""
    n = seconds * rate
    return write_video(path, [i / rate for i in range(n)], [colour(i // rate) for i in range(n)], size=size,
                       rate=rate, **kw)


def mean_colour(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, 3).astype(np.float64).mean(axis=0)


def make_tiny_clip(out: Path, image_size: int = 32, projection_dim: int = 16, seed: int = 0) -> Path:
    """A random-config CLIPVisionModelWithProjection + its image processor, saved like a hub checkpoint."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=8, projection_dim=projection_dim)
    CLIPVisionModelWithProjection(config).save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(out)
    return out


def make_pool_project_onnx(path: Path, weight: np.ndarray, size: int = 48) -> Path:
    """A hand-built ONNX image model: global average pool over H, W then a linear map.

    Shape:
        pixels [N, 3, size, size] -> features [N, weight.shape[1]]
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "w"], ["features"])],
        "pool_project",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", weight.shape[1]])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path

def onnx_cli_args(model: Path) -> list[str]:
    """CLI options selecting the tiny ONNX encoder."""
    return ["--encoder", "onnx", "--model", str(model), "--option", "size=48"]
