"""Quality benchmark on real multilingual text: the Multi30K PROXY (no vision; see docs/quickstart.md).

Every model starts from the best thing a user could do without training, and that baseline is printed first:

- **off-the-shelf**: multilingual USE text against the mean of the USE "frames" (the proxy's own frame encoder),
  no training (``c2kd model aligned``);
- **zero-shot** (English NCE), **translate-train** (NCE on en/de/fr/cs) and **C2KD** students, all started from
  that aligned pair (USE + e5 mixed in; heads are identities plus zero-initialised residuals), all on every shared
  training item by default, ``--seeds`` seeds each. Each text tower also has a trainable word bag
  (``--word-buckets``). The C2KD teachers read the English caption: the off-the-shelf pair, ``teacher-en`` (the
  pair trained and selected on English, same seed), the **e5 pair** (e5 text against e5 passages of the same
  descriptions: its own frames, embedded once; printed as a second baseline), or a set of them pooled.
- **C2KD + e5 pair**: the chosen student and the e5 pair as one fused checkpoint (``c2kd model fuse``, see
  ``c2kd.fused``: the student's cosine plus a weight times the e5 pair's, each reading its own frames of the
  same items, joined side by side with ``c2kd data concat-features``; the weight chosen on val for each seed,
  weight 0 being the student alone), evaluated like any checkpoint. ``--no-fuse`` leaves it out.

Each trained setting is reported as trained, at its best epoch by the validation average (``best-average/``, the
paper's protocol), and beside it as guarded (``best/``, what c2kd hands to users: no language validates below the
start), with the languages that blocked a better epoch in how many seeds; C2KD's gain is read against
translate-train as trained. The fused checkpoint is made from the guarded student (what a user would fuse).

The C2KD setting (alpha and teachers, from ``--candidates``) is chosen on the **validation** split with seed 0; the test split (test_2016, 1,000 items) is only reported. Output: markdown tables (t2v and v2t, mean ± std
over seeds) on stdout, everything in ``--json``. Frozen-backbone caches are computed once (resumable, shareable
with ``--cache``) and their cost is reported; finished runs with the same settings are read back.

    python bench/bench_quality.py --out runs/bench-quality --seeds 3
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

BASELINES = ("zero-shot", "translate-train")
#: the chosen C2KD student fused with the e5 pair (one fused checkpoint, weights chosen on val for each seed)
FUSED = "c2kd + e5-pair"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _candidate(text: str) -> tuple[float, str, str, int | None] | None:
    """``ALPHA:TEACHERS[:POOLER][@EPOCHS]`` as (alpha, teachers, pooler, C2KD epochs); None when it is not one."""
    from c2kd.quickstart import TEACHER_SETS
    from c2kd.similarity import POOLERS

    setting, _, epochs = text.partition("@")
    parts = setting.split(":")
    if len(parts) not in (2, 3) or parts[1] not in TEACHER_SETS or (len(parts) == 3 and parts[2] not in POOLERS):
        return None
    try:
        alpha, student_epochs = float(parts[0]), int(epochs) if epochs else None
    except ValueError:
        return None
    return alpha, parts[1], parts[2] if len(parts) == 3 else "mean", student_epochs


def fused_checkpoint(student: Path, e5_pair: Path, out: Path, datasets: list[Path]) -> tuple[Path, list[float]]:
    """``out``: the student fused with the e5 pair, the weight chosen on val (read back when made from the same
    student). Returns the folder and the kept members' weights."""
    from c2kd.evaluation.fusion import choose_member_weights
    from c2kd.formats import load_model, resolve_checkpoint
    from c2kd.fused import is_fused_checkpoint, read_fusion, save_fused_checkpoint
    from c2kd.quickstart import LANGS

    source = str(resolve_checkpoint(student))
    if not (is_fused_checkpoint(out) and read_fusion(out).members[0].source == source):
        models = [load_model(student), load_model(e5_pair)]
        weights, candidates = choose_member_weights(models, datasets, LANGS)
        save_fused_checkpoint(out, [student, e5_pair], weights, "val",
                              [{"weights": list(k), "t2v/average/R@1": v} for k, v in candidates.items()])
    return out, [m.weight for m in read_fusion(out).members]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-quality"))
    parser.add_argument("--data", type=Path, default=None, help="Multi30K folder (default: located as quickstart)")
    parser.add_argument("--cache", type=Path, default=None, help="frozen-backbone cache (default: <out>/cache)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=None, help="default: every training item")
    parser.add_argument("--max-val", type=int, default=None, help="default: the whole val split")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--word-buckets", type=int, default=2**17,
                        help="rows of the trainable word bag (0: none); more items teach more words than the quickstart's")
    parser.add_argument("--candidates", nargs="+",
                        default=["0.5:off-the-shelf", "0.2:off-the-shelf", "0.2:both", "0.2:pairs", "0.2:all",
                                 "0.2:pairs:zmean", "0.2:all:zmean", "0.2:all:zmean@15"],
                        help="C2KD settings to choose from on val, ALPHA:TEACHERS[:POOLER][@EPOCHS] with TEACHERS one "
                             "of c2kd.quickstart.TEACHER_SETS (off-the-shelf, teacher-en, e5-pair, both, pairs, all), "
                             "POOLER (default mean) pooling several, EPOCHS the student's (default --epochs)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (0 = auto: one when the machine is busy, e.g. two benchmarks side by side)")
    parser.add_argument("--json", type=Path, default=None, help="default: <out>/bench_quality.json")
    parser.add_argument("--no-fuse", dest="fuse", action="store_false",
                        help="leave out the C2KD student fused with the e5 pair")
    args = parser.parse_args(argv)
    candidates: dict[str, tuple[float, str, str, int | None]] = {}
    for text in args.candidates:
        parsed = _candidate(text)
        if parsed is None:
            parser.error(f"--candidates {text}: write ALPHA:TEACHERS[:POOLER][@EPOCHS], e.g. 0.2:all:zmean@15")
        candidates[text] = parsed

    from c2kd.checkpoint import BEST_AVERAGE_DIR, BEST_DIR, HISTORY_FILE, METRICS_FILE
    from c2kd.data.multi30k import build_multi30k_proxy, locate_multi30k
    from c2kd.evaluation.report import aggregate_runs, format_result, markdown_table
    from c2kd.experiments import PlannedRun, as_trained, in_order, train_or_read
    from c2kd.io import write_json
    from c2kd.quickstart import (
        E5_PAIR,
        FRAME_ENCODER,
        LANGS,
        OFF_THE_SHELF,
        TEACHER_SETS,
        QuickstartSettings,
        e5_pair_checkpoint,
        evaluate_checkpoint,
        off_the_shelf_checkpoint,
        quickstart_plan,
        warm_caches,
    )
    from c2kd.runtime import set_cpu_threads

    threads = set_cpu_threads(args.threads)
    log(f"using {threads} CPU thread(s), as many processes to embed captions")
    started = time.perf_counter()
    located = locate_multi30k(args.data)
    log(located.message)
    dataset_dir, runs_dir = args.out / "data", args.out / "runs"
    cache_dir = args.cache or args.out / "cache"
    build_multi30k_proxy(dataset_dir, located.root, frame_encoder=FRAME_ENCODER, max_train=args.max_train,
                         max_val=args.max_val, max_test=None, log=log)
    cache_seconds = warm_caches(dataset_dir, cache_dir, echo=log, processes=threads)
    baseline = off_the_shelf_checkpoint(runs_dir / OFF_THE_SHELF, dataset_dir, cache_dir)
    references = {OFF_THE_SHELF: evaluate_checkpoint(baseline, dataset_dir)}
    if args.fuse or any(E5_PAIR in TEACHER_SETS[teachers] for _, teachers, _, _ in candidates.values()):
        e5_start = time.perf_counter()
        limits = {"train": args.max_train, "val": args.max_val, "test": None}
        e5_pair = e5_pair_checkpoint(runs_dir / E5_PAIR, located.root, args.out / "data-e5", cache_dir, limits, log,
                                     threads)
        references[E5_PAIR] = evaluate_checkpoint(e5_pair, args.out / "data-e5")
        cache_seconds[f"{E5_PAIR} frames"] = time.perf_counter() - e5_start
    reference = references[OFF_THE_SHELF]

    base = QuickstartSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              word_buckets=args.word_buckets or None, progress=False)

    def plan(seed: int, candidate: str) -> dict[str, PlannedRun]:
        """The quickstart's runs at ``seed`` with a C2KD candidate (ALPHA:TEACHERS[:POOLER][@EPOCHS])."""
        alpha, teachers, pooler, c2kd_epochs = candidates[candidate]
        settings = replace(base, seed=seed, alpha=alpha, teachers=teachers, pooler=pooler, c2kd_epochs=c2kd_epochs)
        return quickstart_plan(dataset_dir, runs_dir / f"seed{seed}", cache_dir, settings, teachers_dir=runs_dir)

    def run(planned: PlannedRun) -> tuple[dict, dict, float]:
        """Test metrics, validation metrics of the run as trained (best-average/; best/ for runs saved before it
        was kept), and training seconds of one run."""
        test = train_or_read(planned.config)
        history = json.loads((planned.folder / HISTORY_FILE).read_text())
        kept = BEST_AVERAGE_DIR if (planned.folder / BEST_AVERAGE_DIR / METRICS_FILE).exists() else BEST_DIR
        val = json.loads((planned.folder / kept / METRICS_FILE).read_text())
        return test, val, sum(epoch["train/seconds"] for epoch in history)

    # 1. choose the C2KD setting on val (seed 0): the C2KD student and the teacher it reads
    choices = {}
    for candidate in args.candidates:
        for planned in in_order(plan(0, candidate).values(), only=["c2kd"]):
            _, val, secs = run(planned)  # the teacher it reads first, if any, then the C2KD student
        choices[candidate] = val["t2v/average/R@1"]
        log(f"C2KD {candidate}: val t2v average R@1 {val['t2v/average/R@1']:.2f} ({secs:.0f} s)")
    chosen = max(choices, key=lambda k: choices[k])
    log(f"chosen on val: {chosen}")

    # 2. every setting over seeds, reported on test
    settings = (*BASELINES, "c2kd")
    results: dict[str, list[dict]] = {s: [] for s in settings}
    seconds: dict[str, list[float]] = {s: [] for s in settings}
    for seed in range(args.seeds):
        for planned in in_order(plan(seed, chosen).values()):
            test, _, secs = run(planned)
            if planned.name not in settings:  # a teacher
                continue
            results[planned.name].append(test)
            seconds[planned.name].append(secs)
            log(f"seed {seed} {planned.name}: test t2v average R@1 {test['t2v']['average']['R@1']:.1f} "
                f"({secs:.0f} s)")

    if args.fuse:  # 3. the chosen student and the e5 pair as one fused checkpoint, the weight chosen on val
        from c2kd.data.concat import concat_features

        settings = (*settings, FUSED)
        results[FUSED], seconds[FUSED] = [], []
        join_start = time.perf_counter()
        fused_data = concat_features([dataset_dir, args.out / "data-e5"], args.out / "data-fused", progress=False)
        cache_seconds["joined frames"] = time.perf_counter() - join_start
        for seed in range(args.seeds):
            fuse_start = time.perf_counter()
            folder, weights = fused_checkpoint(plan(seed, chosen)["c2kd"].folder, runs_dir / E5_PAIR,
                                               runs_dir / f"seed{seed}" / "c2kd-fused",
                                               [dataset_dir, args.out / "data-e5"])
            fused = evaluate_checkpoint(folder, fused_data if len(weights) > 1 else dataset_dir)
            results[FUSED].append(fused)
            seconds[FUSED].append(seconds["c2kd"][seed])  # no training of its own: the student's
            log(f"seed {seed} {FUSED}: {folder}, weights {weights} (chosen on val), test t2v average R@1 "
                f"{fused['t2v']['average']['R@1']:.1f} ({time.perf_counter() - fuse_start:.0f} s to choose and test)")

    # as trained (best-average/, the paper's protocol); guarded: best/, with the languages that blocked it
    aggregated = {name: aggregate_runs([as_trained(r) for r in runs]) for name, runs in results.items()}
    guarded = {name: aggregate_runs(runs) for name, runs in results.items()
               if runs and all("selection" in r for r in runs)}
    blocked: dict[str, dict[str, int]] = {}
    for name in guarded:
        for r in results[name]:
            for lang in r["selection"].get("blocked_by", []):
                blocked.setdefault(name, {})[lang] = blocked.setdefault(name, {}).get(lang, 0) + 1
    tt = aggregated["translate-train"]

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_items = reference["protocol"]["videos"]
    print(f"## Multi30K PROXY quality (test_2016, {n_items} items; {args.seeds} seeds, mean ± std; "
          f"{args.max_train or 'all'} training items, {args.epochs} epochs; C2KD alpha:teachers {chosen}, chosen "
          "on val)\n")
    for direction, label in (("t2v", "text -> video"), ("v2t", "video -> text")):
        header = ["setting", *(f"{lang} R@1" for lang in LANGS), "avg R@1", "avg R@5", "avg R@10", "train s"]
        rows = [[f"{name} (no training)", *(f"{ref[direction][lang]['R@1']:.1f}" for lang in LANGS),
                 *(f"{ref[direction]['average'][m]:.1f}" for m in ("R@1", "R@5", "R@10")), "0"]
                for name, ref in references.items()]
        for name in settings:
            shown = [(name, aggregated[name])]
            if name in guarded:
                why = ", ".join(f"{lang} in {k}" for lang, k in blocked.get(name, {}).items())
                shown.append((f"{name}, guarded" + (f" (blocked by {why})" if why else ""), guarded[name]))
            for row_name, agg_all in shown:
                agg = agg_all[direction]
                rows.append([row_name, *(format_result(agg[lang]["R@1"]) for lang in LANGS),
                             *(format_result(agg["average"][m]) for m in ("R@1", "R@5", "R@10")),
                             f"{median(seconds[name]):.0f}"])
        print(f"### {label}, R@1\n")
        print(markdown_table(header, rows))
        print("\nEach trained setting as trained (best validation-average epoch, best-average/: the paper's protocol), "
              "then guarded (best/, what c2kd hands to users: no language below its start on val).")
        for name in ("c2kd", FUSED) if args.fuse else ("c2kd",):
            ours = aggregated[name][direction]
            gains = [f"{lang} {ours[lang]['R@1']['mean'] - tt[direction][lang]['R@1']['mean']:+.1f} "
                     f"(std {max(ours[lang]['R@1']['std'], tt[direction][lang]['R@1']['std']):.1f})"
                     for lang in LANGS]
            print(f"\n{name} vs translate-train, as trained: {', '.join(gains)}")
        print()
    print("cache (s): " + ", ".join(f"{k} {v:.0f}" for k, v in cache_seconds.items())
          + "; val choice (avg R@1): " + ", ".join(f"{c} {v:.2f}" for c, v in choices.items()))
    print(f"peak memory {peak_mb:.0f} MB; total {(time.perf_counter() - started) / 60:.1f} min")
    json_path = args.json or args.out / "bench_quality.json"
    write_json(json_path, {
        "off_the_shelf": reference, "baselines": references, "aggregated": aggregated, "guarded": guarded,
        "blocked_by": blocked, "runs": results,
        "train_seconds": seconds, "cache_seconds": cache_seconds, "val_choice": choices, "chosen": chosen,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        | {"data": str(located.root)}, "peak_memory_mb": peak_mb})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
