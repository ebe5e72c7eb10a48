"""Quality benchmark on real multilingual text: the Multi30K PROXY (no vision; see docs/quickstart.md).

Trains, with frozen cached packaged backbones (student multilingual-e5-small; teachers all-MiniLM-L6-v2 and an
e5 tower reading English; proxy frames encoded by multilingual USE):

- zero-shot (English NCE), translate-train (NCE on en/de/fr/cs), and C2KD with each pooler (min, max, mean),
  each over ``--seeds`` seeds (teachers are trained once, with their own seeds, and shared);

and reports text-to-video R@1/5/10 per language (en de fr cs) on the full test_2016 split (1,000 items) as
mean ± std over seeds: a markdown table on stdout and everything in ``--json``. Finished runs with the same
settings are read back, so a sweep of ``--alpha`` into one ``--out`` trains only the C2KD students again.

    python bench/bench_quality.py --out runs/bench-quality --seeds 3 --max-train 2000
    python bench/bench_quality.py --out runs/bench-quality --seeds 3 --alpha 0.1
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

SETTINGS = ("zero-shot", "translate-train", "c2kd-min", "c2kd-max", "c2kd-mean")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-quality"))
    parser.add_argument("--data", type=Path, default=None, help="Multi30K folder (default: located as quickstart)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=2000)
    parser.add_argument("--max-val", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (0 = auto: one when the machine is busy, e.g. two benchmarks side by side)")
    parser.add_argument("--json", type=Path, default=None, help="default: <out>/bench_quality-alpha<alpha>.json")
    args = parser.parse_args(argv)

    from c2kd.data.multi30k import build_multi30k_proxy, locate_multi30k
    from c2kd.evaluation.report import aggregate_runs, markdown_table
    from c2kd.io import write_json
    from c2kd.quickstart import FRAME_ENCODER, LANGS, run_configs, warm_caches
    from c2kd.runtime import set_cpu_threads
    from c2kd.train.config import TrainConfig
    from c2kd.train.run import finished_run_metrics, train

    print(f"using {set_cpu_threads(args.threads)} CPU thread(s)", file=sys.stderr)
    started = time.perf_counter()
    located = locate_multi30k(args.data)
    print(located.message, file=sys.stderr)
    dataset_dir, cache_dir, runs_dir = args.out / "data", args.out / "cache", args.out / "runs"
    build_multi30k_proxy(dataset_dir, located.root, frame_encoder=FRAME_ENCODER, max_train=args.max_train,
                         max_val=args.max_val, max_test=None, log=lambda m: print(m, file=sys.stderr))
    warm_caches(dataset_dir, cache_dir, echo=lambda m: print(m, file=sys.stderr))

    def run(cfg: dict) -> tuple[dict, float]:
        """Train (or read back) one run: its test metrics and its training seconds (sum over epochs)."""
        config = TrainConfig.model_validate({**cfg, "progress": False})
        metrics = finished_run_metrics(config)  # resumable: finished runs with the same settings are read back
        if metrics is None:
            train(config, resume=True)
            metrics = finished_run_metrics(config)
        history = json.loads((Path(config.out_dir) / "history.json").read_text())
        return metrics, sum(epoch["train/seconds"] for epoch in history)

    results: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    seconds: dict[str, list[float]] = {s: [] for s in SETTINGS}
    base = run_configs(dataset_dir, runs_dir, cache_dir, args.epochs, 64, args.lr, 0, "auto", args.alpha, "max")
    teachers = {name: run(base[name]) for name in ("teacher-minilm", "teacher-e5")}
    for seed in range(args.seeds):
        cfgs = run_configs(dataset_dir, runs_dir / f"seed{seed}", cache_dir, args.epochs, 64, args.lr, seed, "auto",
                           args.alpha, "max")
        plan = {"zero-shot": cfgs["zero-shot"], "translate-train": cfgs["translate-train"]}
        for pooler in ("min", "max", "mean"):
            c = json.loads(json.dumps(cfgs["c2kd"]))
            c["teachers"] = {**c["teachers"], "pooler": pooler,
                             "checkpoints": [base["teacher-minilm"]["out_dir"], base["teacher-e5"]["out_dir"]]}
            c["out_dir"] = str(runs_dir / f"seed{seed}" / f"c2kd-{pooler}-alpha{args.alpha:g}")
            plan[f"c2kd-{pooler}"] = c
        for name, cfg in plan.items():
            res, secs = run(cfg)
            results[name].append(res)
            seconds[name].append(secs)
            print(f"seed {seed} {name}: average R@1 {res['t2v']['average']['R@1']:.1f} ({secs:.0f} s)",
                  file=sys.stderr)

    aggregated = {name: aggregate_runs(runs) for name, runs in results.items()}

    def cell(value: dict) -> str:
        return f"{value['mean']:.1f} ± {value['std']:.1f}" if value["n"] > 1 else f"{value['mean']:.1f}"

    header = ["setting", *(f"{lang} R@1" for lang in LANGS), "avg R@1", "avg R@5", "avg R@10", "vs translate-train",
              "train s (median)"]
    tt = aggregated["translate-train"]["t2v"]["average"]["R@1"]["mean"]
    rows = []
    for name in SETTINGS:
        t2v = aggregated[name]["t2v"]
        avg = t2v["average"]
        secs = sorted(seconds[name])[len(seconds[name]) // 2]
        rows.append([name, *(cell(t2v[lang]["R@1"]) for lang in LANGS), cell(avg["R@1"]), cell(avg["R@5"]),
                     cell(avg["R@10"]), f"{avg['R@1']['mean'] - tt:+.1f}", f"{secs:.0f}"])
    for name, (res, secs) in teachers.items():
        t2v = res["t2v"]
        rows.append([f"{name} (reads en)", *(f"{t2v[lang]['R@1']:.1f}" if lang in t2v else "-" for lang in LANGS),
                     f"{t2v['average']['R@1']:.1f}", f"{t2v['average']['R@5']:.1f}", f"{t2v['average']['R@10']:.1f}",
                     "", f"{secs:.0f}"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"## Multi30K PROXY quality (test_2016, {results['c2kd-max'][0]['protocol']['videos']} items; "
          f"{args.seeds} seeds, mean ± std; train {args.max_train} items, {args.epochs} epochs; "
          f"C2KD alpha {args.alpha:g})\n")
    print(markdown_table(header, rows))
    print(f"\npeak memory {peak_mb:.0f} MB; total {(time.perf_counter() - started) / 60:.1f} min")
    json_path = args.json or args.out / f"bench_quality-alpha{args.alpha:g}.json"
    write_json(json_path, {
        "aggregated": aggregated, "runs": results, "seconds": seconds,
        "teachers": {k: v[0] for k, v in teachers.items()},
        "settings": vars(args) | {"out": str(args.out), "data": str(located.root), "json": str(json_path)},
        "peak_memory_mb": peak_mb})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
