"""Cost of training the word bag: sparse gradients with a lazy Adam (ours) vs dense gradients with Adam.

One optimizer step of a text tower's word bag (``c2kd.encoders.words``) and its projection, on batches of real
Multi30K captions when found (else synthetic ones): B captions in each of 4 languages, as one C2KD step reads
them. The two variants run interleaved, in alternating order, in one process and one torch thread, so machine
noise hits both alike. Reported: median step time (forward, backward, optimizer step), the ratio dense / sparse,
and the optimizer state each holds after the timed steps.

    python bench/bench_words.py                      # 2^17 rows x 256, batch 128 x 4 languages
    python bench/bench_words.py --buckets 262144 --rounds 20
"""

from __future__ import annotations

import argparse
import random
import statistics
import time


def captions(limit: int) -> list[str]:
    """Multi30K training captions (en, de, fr, cs) when the shared data is found, else random word strings."""
    from c2kd.data.multi30k import LANGUAGES, locate_multi30k, read_split
    from c2kd.errors import DataError

    try:
        items = read_split(locate_multi30k(None, download=False).root, "train", limit)
        return [item.captions[lang] for item in items for lang in LANGUAGES]
    except DataError:
        rng = random.Random(0)
        vocabulary = [f"w{i}" for i in range(40_000)]
        return [" ".join(rng.choices(vocabulary, k=12)) for _ in range(4 * limit)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buckets", type=int, default=2**17)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128, help="captions per language per step")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    args = parser.parse_args(argv)

    import torch
    from torch import nn

    from c2kd.encoders.words import WordBag, WordBagConfig
    from c2kd.train.config import OptimConfig
    from c2kd.train.optim import build_optimizer

    torch.set_num_threads(1)
    texts = captions(5000)
    rng = random.Random(0)

    def variant(sparse: bool):
        torch.manual_seed(0)
        model = nn.ModuleDict({"bag": WordBag(WordBagConfig(buckets=args.buckets, dim=args.dim, sparse=sparse)),
                               "projection": nn.Linear(args.dim, 512, bias=False)})
        return model, build_optimizer(model, OptimConfig(lr=3e-4, sparse_lr=1e-2))

    variants = {"sparse + lazy Adam (ours)": variant(True), "dense + Adam": variant(False)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        order = list(variants) if round_ % 2 else list(reversed(variants))
        for name in order:
            model, optimizer = variants[name]
            for _ in range(args.steps):
                batch = rng.sample(texts, 4 * args.batch_size)
                start = time.perf_counter()
                ids = model["bag"].prepare(batch)["ids"]
                loss = model["projection"](model["bag"](ids)).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if round_:
                    times[name].append(time.perf_counter() - start)

    def state_mb(optimizer) -> float:
        return sum(t.numel() * t.element_size() for t in _tensors(optimizer.state_dict())) / 2**20

    ours, dense = (statistics.median(times[name]) for name in variants)
    print(f"## Word bag step: {args.buckets} rows x {args.dim}, {4 * args.batch_size} captions per step "
          f"({args.rounds} rounds x {args.steps} steps, medians, 1 thread)\n")
    print("| variant | step ms | optimizer state MB |\n| --- | --- | --- |")
    for name, (_, optimizer) in variants.items():
        print(f"| {name} | {1000 * statistics.median(times[name]):.1f} | {state_mb(optimizer):.0f} |")
    print(f"\ndense / sparse step time: {dense / ours:.2f}x")
    return 0


def _tensors(tree):
    """Every tensor inside nested dicts and lists."""
    import torch

    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _tensors(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from _tensors(value)


if __name__ == "__main__":
    raise SystemExit(main())
