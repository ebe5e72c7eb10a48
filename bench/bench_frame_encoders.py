"""Benchmark frame encoders: frames encoded per second on this machine, for models of the real shapes with random
weights (no model hub needed: the compute is the real model's).

    python bench/bench_frame_encoders.py                           # siglip2-base-256 and clip-b32 shapes
    python bench/bench_frame_encoders.py --encoders siglip2-base-256 siglip2-base-naflex siglip2-so400m-384 \
        --frames 64 --repeats 3 --batch-size 32 --threads 2

Shapes (vision towers as published in their configs):

* ``siglip2-base-256``: google/siglip2-base-patch16-256 (ViT-B/16, 256 px, 768-d, bilinear squash, mean/std 0.5)
* ``siglip2-base-naflex``: google/siglip2-base-patch16-naflex (ViT-B/16, up to 256 patches, aspect ratio kept)
* ``siglip2-so400m-384``: google/siglip2-so400m-patch14-384 (So400m/14, 384 px, 1152-d)
* ``clip-b32``: openai/clip-vit-base-patch32 (the paper's encoder, for comparison)

Frames are the real MSR-VTT clips' (320x240), decoded once before timing; the time covers c2kd's preprocessing
(resize + normalise) and the forward pass, as ``c2kd extract`` runs them. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CLIPS = REPO.parent / "shared" / "data" / "msrvtt" / "clips"


def _siglip_fixed(folder: Path, hidden: int, layers: int, heads: int, mlp: int, size: int, patch: int) -> Path:
    import torch
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    config = SiglipVisionConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=mlp, image_size=size, patch_size=patch)
    SiglipVisionModel(config).eval().save_pretrained(folder)
    SiglipImageProcessor(size={"height": size, "width": size}, resample=2, image_mean=[0.5] * 3,
                         image_std=[0.5] * 3).save_pretrained(folder)
    return folder


def _siglip_naflex(folder: Path) -> Path:
    import torch
    from transformers import Siglip2ImageProcessor, Siglip2VisionConfig, Siglip2VisionModel

    torch.manual_seed(0)
    Siglip2VisionModel(Siglip2VisionConfig(patch_size=16, num_patches=256)).eval().save_pretrained(folder)
    Siglip2ImageProcessor(patch_size=16, max_num_patches=256).save_pretrained(folder)
    return folder


def _clip_b32(folder: Path) -> Path:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    CLIPVisionModelWithProjection(CLIPVisionConfig(patch_size=32, projection_dim=512)).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


SHAPES = {
    "siglip2-base-256": ("siglip", lambda f: _siglip_fixed(f, 768, 12, 12, 3072, 256, 16)),
    "siglip2-base-naflex": ("siglip", _siglip_naflex),
    "siglip2-so400m-384": ("siglip", lambda f: _siglip_fixed(f, 1152, 27, 16, 4304, 384, 14)),
    "clip-b32": ("clip-vit-b32", _clip_b32),
}


def _frames(count: int):
    from c2kd.features.decode import sample_frames

    frames = []
    while len(frames) < count:
        for path in sorted(CLIPS.glob("*.mp4")):
            frames.extend(sample_frames(path, fps=2.0)[0])
    return frames[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["siglip2-base-256", "clip-b32"], choices=sorted(SHAPES))
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from c2kd.features.encoders import build_frame_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    frames = _frames(args.frames)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.encoders:
            encoder_name, write = SHAPES[name]
            folder = write(Path(tmp) / name)
            encoder = build_frame_encoder(encoder_name, model=str(folder), device="cpu", batch_size=args.batch_size)
            encoder.encode(frames[: min(4, len(frames))])  # warm up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                encoder.encode(frames)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            rows.append((name, encoder.dim, len(frames), seconds, len(frames) / seconds))
    load = os.getloadavg()[0]
    print(f"\nframe encoders on CPU ({torch.get_num_threads()} torch threads of {os.cpu_count()} cores, load average "
          f"{load:.1f} at the end, batch {args.batch_size}, {args.frames} frames of 320x240, median of "
          f"{args.repeats}; random weights, real shapes)\n")
    print("| shape | dim | frames | seconds | frames/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, dim, count, seconds, fps in rows:
        print(f"| {name} | {dim} | {count} | {seconds:.2f} | {fps:.1f} |")


if __name__ == "__main__":
    main()
