"""Size and CPU cost of the SigLIP / SigLIP 2 pairs, with random weights at the released models' shapes.

The released checkpoints cannot be downloaded here (no model hub), so each pair's two towers are built from a
random config of the same shape (hidden size, layers, heads, MLP width, vocabulary, image and patch size, 64 text
tokens): cost and memory depend on the shape, not on the weights. Reported per pair: parameters of each tower and
the fp32 size on disk / in memory (computed from the architecture, no weights materialised for it), c2kd's text
tower in sentences per second (``SiglipTextBackbone.forward`` on 64-token inputs, batch 32), and the image tower in
frames per second (``pooler_output`` of preprocessed pixels at the model's resolution, batch 8; NaFlex at its
256-patch budget). Timings are medians over ``--rounds`` after one warm-up, in fp32 with ``--threads`` torch
threads on this machine's CPU.

    python bench/bench_siglip.py                          # the four pairs
    python bench/bench_siglip.py --pairs siglip2-base-patch16-256 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

#: the released models' shapes (their config.json): text and vision towers
_BASE_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                "patch_size": 16}
_BASE_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
              "max_position_embeddings": 64}
_SO400M = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16}
SHAPES: dict[str, dict[str, Any]] = {
    "siglip2-base-patch16-256": {"family": "siglip", "vision": {**_BASE_VISION, "image_size": 256},
                                 "text": {**_BASE_TEXT, "vocab_size": 256_000}},
    "siglip2-so400m-patch14-384": {"family": "siglip",
                                   "vision": {**_SO400M, "image_size": 384, "patch_size": 14},
                                   "text": {**_SO400M, "max_position_embeddings": 64, "vocab_size": 256_000,
                                            "projection_size": 1152}},
    "siglip2-base-patch16-naflex": {"family": "siglip2", "vision": {**_BASE_VISION, "num_patches": 256},
                                    "text": {**_BASE_TEXT, "vocab_size": 256_000}},
    "siglip-base-patch16-256-multilingual": {"family": "siglip", "vision": {**_BASE_VISION, "image_size": 256},
                                             "text": {**_BASE_TEXT, "vocab_size": 250_000}},
}


def _classes(family: str):
    import transformers as t

    if family == "siglip2":
        return t.Siglip2TextConfig, t.Siglip2TextModel, t.Siglip2VisionConfig, t.Siglip2VisionModel
    return t.SiglipTextConfig, t.SiglipTextModel, t.SiglipVisionConfig, t.SiglipVisionModel


def _random(model_class, config):
    """The model with transformers' own random initialisation (seeded)."""
    import torch

    torch.manual_seed(0)
    return model_class(config).eval()


def _count(model_class, config) -> int:
    import torch

    with torch.device("meta"):
        return sum(p.numel() for p in model_class(config).parameters())


def _median_seconds(run, rounds: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, rounds: int, text_batch: int, frame_batch: int) -> dict[str, Any]:
    import torch

    from c2kd.encoders.text.siglip import SiglipTextBackbone

    shape = SHAPES[name]
    text_config_class, text_class, vision_config_class, vision_class = _classes(shape["family"])
    text_config, vision_config = text_config_class(**shape["text"]), vision_config_class(**shape["vision"])
    row: dict[str, Any] = {"pair": name, "text_params": _count(text_class, text_config),
                           "vision_params": _count(vision_class, vision_config)}

    text = SiglipTextBackbone(_random(text_class, text_config), tokenizer=None, name=name)
    ids = torch.randint(0, text_config.vocab_size, (text_batch, text.length))
    with torch.no_grad():
        seconds = _median_seconds(lambda: text({"input_ids": ids}), rounds)
    row["sentences_per_s"] = text_batch / seconds

    vision = _random(vision_class, vision_config)
    if shape["family"] == "siglip2":  # NaFlex: a 16x16 grid of patches (the 256-patch budget), all real
        patches, side = vision_config.num_patches, int(vision_config.num_patches ** 0.5)
        pixel = 3 * vision_config.patch_size ** 2
        inputs = {"pixel_values": torch.randn(frame_batch, patches, pixel),
                  "pixel_attention_mask": torch.ones(frame_batch, patches, dtype=torch.long),
                  "spatial_shapes": torch.tensor([[side, side]] * frame_batch)}
    else:
        size = vision_config.image_size
        inputs = {"pixel_values": torch.randn(frame_batch, 3, size, size)}
    with torch.no_grad():
        seconds = _median_seconds(lambda: vision(**inputs).pooler_output, rounds)
    row["frames_per_s"] = frame_batch / seconds
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=",".join(SHAPES), help="comma-separated pair names")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--text-batch", type=int, default=32)
    parser.add_argument("--frame-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    print(f"random weights at the released shapes; fp32, {args.threads} torch threads, median of {args.rounds}")
    print("| pair | text params | image params | fp32 size | sentences/s | frames/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.pairs.split(","):
        row = measure(name.strip(), args.rounds, args.text_batch, args.frame_batch)
        total = row["text_params"] + row["vision_params"]
        print(f"| {row['pair']} | {row['text_params'] / 1e6:.0f}M | {row['vision_params'] / 1e6:.0f}M | "
              f"{total * 4 / 2**30:.2f} GiB | {row['sentences_per_s']:.1f} | {row['frames_per_s']:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
