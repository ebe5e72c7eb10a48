"""Cost of one training step: translate-train NCE vs C2KD with cached teachers vs C2KD with live teachers.

Side by side in one run, on the same synthetic data and the same student:

- (a) translate-train NCE (alpha = 1);
- (b) C2KD, teachers' embeddings cached before training (ours);
- (c) C2KD, the 3 teachers run on every batch (as the original code does).

Each variant lives in its own worker process (so its peak memory is its own) built by the real training code
(``c2kd.train.run.prepare_run``, ``Trainer._step``). The parent interleaves the variants: in every round each
worker runs a few steps, in a rotating order, so machine noise hits all of them alike. Every worker uses one
torch thread. Reported: medians over all timed steps of the batch fetch (data loading, in the step's thread),
the optimizer step, and their sum; the ratios (b)/(a) and (c)/(b); peak RSS (and CUDA peak memory on a GPU).

Then steps/s of C2KD (b) on the same global batch with 1 process x 1 thread, 2 processes x 1 thread
(DDP over gloo, ``WORLD_SIZE=2``) and 1 process x 2 threads, launches interleaved over ``--ddp-rounds``.

Text models are random-config BERT / XLM-R of one size (``--hidden``, ``--layers``) so student and teachers cost
the same per text, as LaBSE and the paper's base-size teachers do. Teachers are untrained (timing only).

    python bench/bench_step.py                  # defaults: batch 64, 2 student languages, hidden 256, 4 layers
    python bench/bench_step.py --rounds 8 --steps 4 --json bench-step.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "a": "translate-train NCE",
    "b": "C2KD, cached teachers (ours)",
    "c": "C2KD, 3 live teachers (original)",
}


# -- setup ------------------------------------------------------------------------------------------------
def make_inputs(root: Path, args) -> dict:
    """Synthetic dataset, a student and 3 teacher text models, 3 random teacher checkpoints."""
    import pyarrow.parquet as pq
    import torch

    from c2kd.checkpoint import save_checkpoint
    from c2kd.data.synthetic import SyntheticConfig, generate_synthetic
    from c2kd.encoders.random_hf import make_random_text_model
    from c2kd.model import build_model
    from c2kd.train.config import load_config

    langs = ["en", "de", "fr", "cs"][: max(args.languages, 1)]
    data = generate_synthetic(root / "data", SyntheticConfig(
        n_train=args.train_videos, n_val=16, n_test=16, languages=langs, captions_per_video=5,
        feature_dim=args.feature_dim, min_frames=20, max_frames=30, seed=0))
    texts = pq.read_table(data / "captions.parquet", columns=["text"]).column("text").to_pylist()
    size = dict(hidden=args.hidden, layers=args.layers, heads=max(args.hidden // 64, 2))
    text_models = {"student": make_random_text_model(root / "student", texts, seed=0, **size)}
    for i, arch in enumerate(["bert", "xlm-roberta", "bert"]):
        text_models[f"teacher{i}"] = make_random_text_model(root / f"teacher{i}", texts, seed=1 + i,
                                                            architecture=arch, **size)
    teachers = []
    for i in range(3):
        cfg = load_config(None, [], base=base_config(str(data), str(text_models[f"teacher{i}"]), args,
                                                     str(root / f"t{i}")))
        torch.manual_seed(10 + i)
        teachers.append(str(save_checkpoint(root / f"t{i}" / "best", build_model(cfg.model), cfg)))
    return {"data": str(data), "student": str(text_models["student"]), "teachers": teachers,
            "languages": langs}


def base_config(data: str, text_model: str, args, out_dir: str) -> dict:
    return {
        "data": {"path": data, "val_split": None, "test_split": None, "num_workers": 0},
        "model": {"text": {"name": text_model, "embed_dim": 256},
                  "video": {"feature_dim": args.feature_dim, "embed_dim": 256}},
        "epochs": 1000, "batch_size": args.batch_size, "out_dir": out_dir, "progress": False,
        "tensorboard": False, "device": args.device,
    }


def variant_config(variant: str, inputs: dict, args, out_dir: str):
    from c2kd.train.config import load_config

    tree = base_config(inputs["data"], inputs["student"], args, out_dir)
    if variant != "a":
        tree["stage"] = "c2kd"
        tree["loss"] = {"alpha": 0.5}
        tree["teachers"] = {"checkpoints": inputs["teachers"], "cache": variant == "b"}
    # the student trains on every language, English included, as in the paper
    tree["data"]["languages"] = inputs["languages"]
    return load_config(None, [], base=tree)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- one variant in one process -------------------------------------------------------------------------------
class StepRunner:
    """Builds a run with the training code and times fetch + step on demand."""

    def __init__(self, config):
        import torch

        from c2kd.train.run import prepare_run
        from c2kd.train.trainer import Loop, Trainer

        t0 = time.perf_counter()
        self.parts = prepare_run(config)
        self.setup_seconds = time.perf_counter() - t0
        p = self.parts
        self.trainer = Trainer(p.model, p.task, p.loader, p.optimizer, p.scheduler, config.out_dir, p.device,
                               Loop(precision=config.precision, progress=False, tensorboard=False),
                               is_main=p.env.is_main)
        p.model.to(p.device)
        p.model.train()
        self.epoch = 0
        self._iter = self._new_epoch()
        self.cuda = p.device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def _new_epoch(self):
        sampler = self.parts.loader.batch_sampler
        sampler.set_epoch(self.epoch)
        self.parts.pairs.set_epoch(self.epoch)
        self.epoch += 1
        return iter(self.parts.loader)

    def _next(self):
        try:
            return next(self._iter)
        except StopIteration:
            self._iter = self._new_epoch()
            return next(self._iter)

    def run(self, steps: int) -> list[tuple[float, float, float]]:
        """(fetch, step, loss) for ``steps`` steps."""
        import torch

        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            batch = self._next()
            t1 = time.perf_counter()
            values = self.trainer._step(batch)
            if self.cuda:
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            out.append((t1 - t0, t2 - t1, values["loss"]))
        return out

    def memory(self) -> dict:
        import torch

        mem = {"peak_rss_mb": _peak_rss_mb()}
        if self.cuda:
            mem["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        return mem


def variant_worker(conn, variant: str, inputs: dict, args_dict: dict, out_dir: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    args = argparse.Namespace(**args_dict)
    try:
        runner = StepRunner(variant_config(variant, inputs, args, out_dir))
        conn.send({"ready": True, "setup_seconds": runner.setup_seconds, "rss_after_setup_mb": _peak_rss_mb()})
        while True:
            msg = conn.recv()
            if msg is None:
                break
            conn.send({"steps": runner.run(msg), **runner.memory()})
    except Exception as exc:  # noqa: BLE001 - report, do not hang the parent
        import traceback

        conn.send({"error": f"{exc}\n{traceback.format_exc()}"})
    finally:
        conn.close()


# -- DDP throughput --------------------------------------------------------------------------------------------
def ddp_worker_main(spec_path: str) -> None:
    """Entry of one process of a throughput launch (env: WORLD_SIZE, RANK, MASTER_*; C2KD_BENCH_THREADS)."""
    import torch

    torch.set_num_threads(int(os.environ.get("C2KD_BENCH_THREADS", "1")))
    spec = json.loads(Path(spec_path).read_text())
    args = argparse.Namespace(**spec["args"])
    runner = StepRunner(variant_config("b", spec["inputs"], args, spec["out"]))
    runner.run(args.warmup)
    from c2kd.train.distributed import barrier

    barrier()
    t0 = time.perf_counter()
    runner.run(args.ddp_steps)
    barrier()
    elapsed = time.perf_counter() - t0
    if runner.parts.env.is_main:
        Path(spec["result"]).write_text(json.dumps({"steps_per_s": args.ddp_steps / elapsed}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_throughput(world: int, threads: int, inputs: dict, args, root: Path, tag: str) -> float:
    plain = {k: v for k, v in vars(args).items() if k not in ("work", "json")}
    spec = {"inputs": inputs, "args": plain, "out": str(root / f"ddp-{tag}"),
            "result": str(root / f"ddp-{tag}.json")}
    spec_path = root / f"ddp-{tag}-spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS=str(threads), C2KD_BENCH_THREADS=str(threads))
    if world > 1:
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(world))
    procs = [subprocess.Popen([sys.executable, __file__, "--ddp-worker", str(spec_path)],
                              env=dict(env, RANK=str(r), LOCAL_RANK=str(r)) if world > 1 else env)
             for r in range(world)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"throughput launch {tag} failed with exit codes {codes}")
    return json.loads(Path(spec["result"]).read_text())["steps_per_s"]


# -- report ---------------------------------------------------------------------------------------------------
def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def step_table(args, inputs: dict, worker_args: dict, root: Path) -> dict:
    """The interleaved per-step comparison of the three variants; prints its table, returns the numbers."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    workers = {}
    for v in VARIANTS:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=variant_worker, args=(child, v, inputs, worker_args, str(root / f"run-{v}"), 1))
        proc.start()
        workers[v] = (proc, parent)
    setup = {}
    for v, (_, conn) in workers.items():
        msg = conn.recv()
        if "error" in msg:
            raise RuntimeError(f"variant {v} failed to start:\n{msg['error']}")
        setup[v] = msg
    for _, conn in workers.values():  # warm-up, untimed
        conn.send(args.warmup)
        conn.recv()
    times = {v: [] for v in VARIANTS}
    memory = {}
    order = list(VARIANTS)
    for r in range(args.rounds):
        for v in order[r % 3:] + order[: r % 3]:
            conn = workers[v][1]
            conn.send(args.steps)
            msg = conn.recv()
            if "error" in msg:
                raise RuntimeError(f"variant {v} failed:\n{msg['error']}")
            times[v].extend(msg["steps"])
            memory[v] = {k: val for k, val in msg.items() if k != "steps"}
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    for proc, conn in workers.values():
        conn.send(None)
        proc.join()

    med = {v: {"fetch": statistics.median(t[0] for t in ts), "step": statistics.median(t[1] for t in ts),
               "total": statistics.median(t[0] + t[1] for t in ts)} for v, ts in times.items()}
    rows = []
    for v, name in VARIANTS.items():
        m = med[v]
        row = [f"({v}) {name}", f"{1000 * m['fetch']:.1f}", f"{1000 * m['step']:.0f}", f"{1000 * m['total']:.0f}",
               f"{m['total'] / med['a']['total']:.2f}", f"{memory[v]['peak_rss_mb']:.0f}",
               f"{setup[v]['setup_seconds']:.1f}"]
        if "cuda_peak_mb" in memory[v]:
            row.append(f"{memory[v]['cuda_peak_mb']:.0f}")
        rows.append(row)
    header = ["variant", "fetch ms", "step ms", "total ms", "vs (a)", "peak RSS MB", "setup s"]
    if any("cuda_peak_mb" in memory[v] for v in VARIANTS):
        header.append("CUDA peak MB")
    print(f"\n### Training step cost (batch {args.batch_size}, {len(inputs['languages'])} student languages, "
          f"text models hidden {args.hidden} x {args.layers} layers, {args.device}, 1 torch thread per process; "
          f"medians of {args.rounds * args.steps} interleaved steps)\n")
    print(_md(header, rows))
    ratio_b_a = med["b"]["total"] / med["a"]["total"]
    ratio_c_b = med["c"]["total"] / med["b"]["total"]
    print(f"\n(b)/(a) = {ratio_b_a:.3f} (goal <= 1.10); (c)/(b) = {ratio_c_b:.2f}")
    return {"medians_s": med, "memory": memory, "setup": setup, "ratio_b_over_a": ratio_b_a,
            "ratio_c_over_b": ratio_c_b}



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--languages", type=int, default=2, help="student languages (en, de, fr, cs)")
    parser.add_argument("--train-videos", type=int, default=512)
    parser.add_argument("--feature-dim", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ddp-rounds", type=int, default=3)
    parser.add_argument("--ddp-steps", type=int, default=8)
    parser.add_argument("--skip-ddp", action="store_true", help="only the per-step table")
    parser.add_argument("--skip-steps", action="store_true", help="only the 1 vs 2 processes table")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--ddp-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        ddp_worker_main(args.ddp_worker)
        return 0

    tmp = tempfile.TemporaryDirectory(prefix="bench-step-") if args.work is None else None
    root = Path(tmp.name if tmp else args.work)
    root.mkdir(parents=True, exist_ok=True)
    print(f"setting up in {root} ...", file=sys.stderr)
    inputs = make_inputs(root, args)
    worker_args = {k: v for k, v in vars(args).items() if k not in ("work", "json")}

    result: dict = {"args": worker_args}
    if not args.skip_steps:
        result.update(step_table(args, inputs, worker_args, root))

    if not args.skip_ddp:
        print("\nthroughput launches (interleaved) ...", file=sys.stderr)
        configs = [("1 process x 1 thread", 1, 1), ("2 processes x 1 thread (DDP, gloo)", 2, 1),
                   ("1 process x 2 threads", 1, 2)]
        rates = {name: [] for name, _, _ in configs}
        for r in range(args.ddp_rounds):
            for k in range(len(configs)):
                name, world, threads = configs[(k + r) % len(configs)]
                rates[name].append(launch_throughput(world, threads, inputs, args, root, f"{r}-{world}-{threads}"))
        base = statistics.median(rates[configs[0][0]])
        rows = [[name, f"{statistics.median(v):.2f}", f"{statistics.median(v) / base:.2f}",
                 " ".join(f"{x:.2f}" for x in v)] for name, v in rates.items()]
        print(f"\n### C2KD (cached) steps/s, global batch {args.batch_size}, this CPU "
              f"({os.cpu_count()} cores); medians over {args.ddp_rounds} interleaved launches of "
              f"{args.ddp_steps} steps\n")
        print(_md(["processes", "steps/s", "vs 1x1", "all launches"], rows))
        result["throughput_steps_per_s"] = rates
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
