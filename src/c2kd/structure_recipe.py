"""The structure-distillation recipe on the Multi30K proxy: translate-train, C2KD and structure distillation
(after MCKD) side by side over seeds, mean ± std.

Every run starts from the quickstart's aligned pair and trains its heads as the quickstart does
(:func:`c2kd.quickstart.run_configs`); C2KD and structure distillation learn from the same teacher (the
training-free pair reading English) with the same alpha. Each run is reported as trained, at its best epoch by the
validation average (``best-average/``: the paper's protocol for comparing methods), and beside it as guarded
(``best/``, what a user is handed: no language validates below the start), as every table comparing methods does
(:func:`c2kd.experiments.compared_rows`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from c2kd.quickstart import (
    OFF_THE_SHELF,
    ProxySize,
    QuickstartSettings,
    build_proxy,
    evaluate_checkpoint,
    off_the_shelf_checkpoint,
    run_configs,
    warm_caches,
)

METHODS = ("translate-train", "c2kd", "structure")
LABELS = {"off-the-shelf": "off-the-shelf (no training)", "translate-train": "translate-train",
          "c2kd": "C2KD", "structure": "structure distillation (after MCKD)"}


def recipe_configs(dataset_dir: Path, runs_dir: Path, cache_dir: Path, settings: QuickstartSettings,
                   structure: Mapping[str, float] | None = None) -> dict[str, dict]:
    """The three runs of one seed (``settings.seed``) under ``runs_dir/seed<N>``: the quickstart's translate-train
    and C2KD runs, and the C2KD run with ``loss.distillation: structure`` (``structure``: its
    ``loss.structure`` weights and temperatures)."""
    seed_dir = runs_dir / f"seed{settings.seed}"
    quick = run_configs(dataset_dir, seed_dir, cache_dir, settings, teachers_dir=runs_dir)
    runs = {"translate-train": quick["translate-train"], "c2kd": quick["c2kd"]}
    structured = {**quick["c2kd"], "out_dir": str(seed_dir / f"structure-alpha{settings.alpha:g}")}
    structured["loss"] = {**quick["c2kd"]["loss"], "distillation": "structure", "structure": dict(structure or {})}
    runs["structure"] = structured
    return runs


def table(results: Mapping[str, dict], direction: str = "t2v", metric: str = "R@1") -> str:
    """A markdown table: one row per method, its ``metric`` per language and on average (mean ± std)."""
    from c2kd.evaluation.report import format_result, markdown_table

    first = next(iter(results.values()))[direction]
    langs = [k for k in first if k != "average"] + ["average"]
    rows = [[LABELS.get(name, name), *(format_result(res[direction][lang][metric]) for lang in langs)]
            for name, res in results.items()]
    return markdown_table([f"{direction} {metric}", *langs], rows)


def guarded_name(method: str, runs: Sequence[Mapping]) -> str:
    """The row of a method's guarded ``best/`` over seeds: ``C2KD, guarded (blocked by cs in 2)``."""
    blocked: dict[str, int] = {}
    for run in runs:
        for lang in run.get("selection", {}).get("blocked_by", []):
            blocked[lang] = blocked.get(lang, 0) + 1
    why = ", ".join(f"{lang} in {n}" for lang, n in blocked.items())
    return f"{LABELS.get(method, method)}, guarded" + (f" (blocked by {why})" if why else "")


def run_structure_recipe(out: Path, seeds: Sequence[int] = (0, 1, 2), settings: QuickstartSettings | None = None,
                         size: ProxySize | None = None, data: Path | None = None, download: bool = True,
                         structure: Mapping[str, float] | None = None, echo: Callable[[str], None] = print,
                         processes: int = 1) -> dict[str, Any]:
    """Build the proxy (as the quickstart does), train the three methods for every seed (resumable: finished
    runs are read back), write ``structure.md`` and ``structure.json`` in ``out``; return the aggregates."""
    from c2kd.evaluation.report import aggregate_runs
    from c2kd.experiments import as_trained, in_order, planned_runs, train_or_read
    from c2kd.io import write_json, write_text

    settings = settings or QuickstartSettings()
    size = size or ProxySize()
    started = time.perf_counter()
    out = Path(out)
    _, dataset_dir, cache_dir, runs_dir = build_proxy(out, size, data, download, echo)
    warm_caches(dataset_dir, cache_dir, echo, processes)
    baseline = evaluate_checkpoint(off_the_shelf_checkpoint(runs_dir / OFF_THE_SHELF, dataset_dir, cache_dir),
                                   dataset_dir)
    per_seed: dict[str, list[dict]] = {name: [] for name in METHODS}
    seconds: dict[str, float] = {}
    for seed in seeds:
        plan = planned_runs(recipe_configs(dataset_dir, runs_dir, cache_dir, replace(settings, seed=seed),
                                           structure))
        for run in in_order(plan.values()):
            start = time.perf_counter()
            result = train_or_read(run.config)
            seconds[f"seed{seed} {run.name}"] = time.perf_counter() - start
            per_seed[run.name].append(result)
            echo(f"seed {seed} {run.name}: test t2v average R@1 {result['t2v']['average']['R@1']:.1f} "
                 f"({seconds[f'seed{seed} {run.name}']:.0f} s)")
    aggregated = {"off-the-shelf": aggregate_runs([baseline])}
    for name, runs in per_seed.items():
        aggregated[name] = aggregate_runs([as_trained(run) for run in runs])
        aggregated[guarded_name(name, runs)] = aggregate_runs(runs)
    seconds["total"] = time.perf_counter() - started
    text = (f"Multi30K proxy test ({baseline['protocol']['videos']} items), seeds {', '.join(map(str, seeds))}: "
            "mean ± std; each run as trained, at its best validation-average epoch (best-average/, the paper's "
            "protocol), then guarded (best/, what a user is handed: no language below its start on val; the "
            "languages named blocked a better epoch in that many seeds).\n\n"
            + table(aggregated, "t2v") + "\n\n" + table(aggregated, "v2t") + "\n")
    echo("\n" + text)
    write_text(out / "structure.md", text)
    write_json(out / "structure.json", {"aggregated": aggregated, "per_seed": per_seed, "seeds": list(seeds),
                                        "settings": {**asdict(settings), **asdict(size), "structure": dict(structure or {})},
                                        "seconds": seconds})
    echo(f"done in {seconds['total'] / 60:.1f} min; {out / 'structure.md'}")
    return aggregated
