"""Run a recipe: teachers first, then students, over seeds; skip finished runs; compare with the paper.

Every training run gets a folder named by its label, seed and a hash of its full config (``runs/<name>-s<seed>-
<hash>``), so identical runs of different recipes (e.g. the translate-train NCE student of Table 2 and of
Figures 4-5) are trained once, and a changed setting never reuses a stale result. The hash leaves out the settings
that are no part of a run's identity (:data:`c2kd.checkpoint.NOT_IDENTITY`, the same ones a run may be read back
with): a changed evaluation setting (``tie_policy``, ``missing_ranks``) evaluates the run again without training
it again. A run is finished when its folder holds ``test_metrics.json`` computed with its evaluation settings; an
interrupted run resumes from its ``last/`` checkpoint (:mod:`c2kd.experiments` trains or reads back each run).

Each student is reported as trained, at its best epoch by the validation average (``best-average/``: the paper's
protocol), and beside it as guarded (``best/``, what c2kd hands to users: no language validates below the start),
with the languages that blocked a better epoch and in how many seeds. Teachers are reported as the students read
them (``best/``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from c2kd.checkpoint import TEST_METRICS_FILE
from c2kd.errors import ConfigError, DataError
from c2kd.experiments import PlannedRun, as_trained, hashed_folder, train_or_read, validated
from c2kd.reproduce.recipes import Recipe
from c2kd.train.config import _merge, parse_overrides

log = logging.getLogger(__name__)


@dataclass
class Plan:
    recipe: Recipe
    work: Path
    seeds: list[int]
    teachers: list[PlannedRun] = field(default_factory=list)
    students: list[PlannedRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def runs(self) -> list[PlannedRun]:
        return self.teachers + self.students


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``key=value`` applies to every run; ``NAME:key=value`` only to the run or teacher called NAME."""
    common: list[str] = []
    scoped: dict[str, list[str]] = {}
    for item in overrides:
        head, eq, _ = item.partition("=")
        if ":" in head and eq:
            name, _, rest = item.partition(":")
            scoped.setdefault(name.strip(), []).append(rest)
        else:
            common.append(item)
    return common, scoped


def _dataset_facts(data: Path) -> tuple[list[str], list[str], int]:
    from c2kd.data.dataset import VideoTextDataset

    ds = VideoTextDataset(data)
    return ds.splits, ds.languages, ds.features.dim


def plan_recipe(recipe: Recipe, data: str | os.PathLike, work: str | os.PathLike, seeds: int | Sequence[int] = 3,
                overrides: Sequence[str] = (), only: Sequence[str] | None = None) -> Plan:
    """Resolve every run of ``recipe`` into a validated :class:`TrainConfig` with its own folder.

    The dataset is opened to adapt the split names and to check languages and feature sizes up front, so a
    mismatch fails before hours of teacher training, not after.
    """
    data, work = Path(data).resolve(), Path(work).resolve()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ConfigError("--seeds must be at least 1")
    common, scoped = split_overrides(list(overrides))
    known = {r.name for r in recipe.runs} | set(recipe.teachers)
    unknown = sorted(set(scoped) - known)
    if unknown:
        raise ConfigError(
            f"override scope(s) {unknown} name no run or teacher of {recipe.name}; known: {sorted(known)}")
    if only:
        missing = sorted(set(only) - {r.name for r in recipe.runs})
        if missing:
            raise ConfigError(f"--runs {missing} are not runs of {recipe.name}: {[r.name for r in recipe.runs]}")
    splits, languages, feature_dim = _dataset_facts(data)
    plan = Plan(recipe, work, seed_list)

    base = _merge(recipe.base, {"data": {"path": str(data)}})
    if "eval_languages" not in base.get("data", {}):
        base = _merge(base, {"data": {"eval_languages": list(recipe.languages)}})
    if "val" not in splits:
        base = _merge(base, {"data": {"val_split": None}})
        plan.notes.append(f"{data} has no 'val' split: each run's best/ is its epoch of lowest training loss "
                          "(the paper selects on a validation split; add one with --override data.val_split=NAME)")
    common_tree = parse_overrides(common)

    def resolve(name: str, fragment: dict, stage: str, seed: int, extra: dict | None = None) -> dict:
        tree = _merge(base, fragment)
        tree = _merge(tree, {"stage": stage, "seed": seed, **(extra or {})})
        tree = _merge(tree, common_tree)
        tree = _merge(tree, parse_overrides(scoped.get(name, [])))
        if stage == "zero-shot":  # trains on English whatever data.languages says for the other runs
            tree = _merge(tree, {"data": {"languages": None}})
        return tree

    def finish(tree: dict, kind: str, name: str, seed: int) -> PlannedRun:
        folder = hashed_folder(work / "runs", name, seed, tree)
        cfg = validated(_merge(tree, {"out_dir": str(folder)}), f"recipe {recipe.name}, {kind} {name!r}")
        return PlannedRun(kind, name, cfg)

    students = [r for r in recipe.runs if not only or r.name in only]
    needed = sorted({t for r in students for t in r.teachers})
    teacher_seeds = seed_list if recipe.teacher_seeds == "matched" else seed_list[:1]
    teacher_runs: dict[tuple[str, int], PlannedRun] = {}
    for name in needed:
        for seed in teacher_seeds:
            run = finish(resolve(name, recipe.teachers[name], "translate-train", seed), "teacher", name, seed)
            teacher_runs[(name, seed)] = run
            plan.teachers.append(run)
    for spec in students:
        for seed in seed_list:
            t_seed = seed if recipe.teacher_seeds == "matched" else seed_list[0]
            extra = None
            if spec.teachers:
                extra = {"teachers": {"checkpoints": [str(teacher_runs[(t, t_seed)].folder) for t in spec.teachers]}}
            tree = resolve(spec.name, spec.config, spec.stage, seed, extra)
            plan.students.append(finish(tree, "student", spec.name, seed))

    for planned in plan.runs:
        cfg = planned.config
        if cfg.model.video.feature_dim != feature_dim:
            raise ConfigError(
                f"{data} holds {feature_dim}-d frame features but recipe {recipe.name} expects "
                f"{cfg.model.video.feature_dim}-d ones ({recipe.dataset.strip()}). Import the features the recipe "
                f"names, or pass --override model.video.feature_dim={feature_dim}"
            )
        for split_name in (cfg.data.train_split, cfg.data.test_split):
            if split_name not in splits:
                raise DataError(f"{data}: recipe {recipe.name} needs split {split_name!r}; the dataset has {splits}. "
                                "Rename with --override data.train_split=... / data.test_split=...")
        wanted = (cfg.data.eval_languages or []) + (cfg.data.languages or [])
        absent = [lang for lang in wanted if lang not in languages]
        if absent:
            raise DataError(f"{data} has no captions in {sorted(set(absent))} (it has {languages}); pass "
                            f"--override data.eval_languages=[...] to evaluate fewer languages")
    return plan


def execute(plan: Plan, progress: bool = True) -> None:
    """Train every unfinished run of the plan, teachers first (resumable; safe under torchrun)."""
    from c2kd.progress import progress_bar
    from c2kd.train.distributed import detect_env

    main = detect_env().is_main
    todo = [r for r in plan.runs if not r.finished]
    bar = progress_bar(total=len(plan.runs), initial=len(plan.runs) - len(todo), desc=f"{plan.recipe.name} runs",
                       unit="run", disable=not (progress and main))
    for run in todo:
        if run.finished:  # an identical run earlier in this plan (shared folder) already did it
            bar.update(1)
            continue
        bar.set_postfix_str(f"{run.kind} {run.name} seed {run.seed}")
        log.info("training %s %s seed %d in %s", run.kind, run.name, run.seed, run.folder)
        train_or_read(run.config)
        bar.update(1)
    bar.close()


def _metrics_of(run: PlannedRun) -> dict:
    return json.loads((run.folder / TEST_METRICS_FILE).read_text())


def collect(plan: Plan) -> dict[str, Any]:
    """Our numbers (mean, std over seeds) beside the paper's, for every run of the plan that has finished."""
    from c2kd.evaluation.report import aggregate_runs

    recipe = plan.recipe
    by_name: dict[str, list[PlannedRun]] = {}
    for run in plan.students:
        by_name.setdefault(run.name, []).append(run)
    rows = []
    for spec in recipe.runs:
        if spec.name not in by_name:
            continue
        done = [r for r in by_name[spec.name] if r.finished]
        metrics = [_metrics_of(r) for r in done]
        # ours: as trained (best-average/, the paper's protocol); guarded: best/, as handed to users
        ours = aggregate_runs([as_trained(m)["t2v"] for m in metrics]) if done else None
        guarded = aggregate_runs([m["t2v"] for m in metrics]) if done else None
        blocked: dict[str, int] = {}
        for m in metrics:
            for lang in m.get("selection", {}).get("blocked_by", []):
                blocked[lang] = blocked.get(lang, 0) + 1
        rows.append({
            "name": spec.name, "label": spec.label, "setting": spec.setting, "stage": spec.stage,
            "teachers": spec.teachers, "seeds": [r.seed for r in done],
            "folders": [str(r.folder) for r in done], "ours": ours, "guarded": guarded,
            "epochs": {"as_trained": [as_trained(m).get("selection", {}).get("epoch") for m in metrics],
                       "guarded": [m.get("selection", {}).get("epoch") for m in metrics]},
            "blocked_by": blocked, "paper": spec.paper,
        })
    teachers: dict[str, list[dict]] = {}
    for run in plan.teachers:
        if run.finished:
            teachers.setdefault(run.name, []).append(_metrics_of(run)["t2v"])
    return {
        "recipe": recipe.name, "title": recipe.title, "source": recipe.source, "note": recipe.note.strip(),
        "languages": recipe.languages, "metrics": recipe.metrics, "average": recipe.average,
        "seeds": plan.seeds, "notes": plan.notes, "rows": rows,
        "teachers": {name: aggregate_runs(res) for name, res in teachers.items()},
    }


def _columns(results: dict) -> list[tuple[str, str]]:
    langs = list(results["languages"]) + (["average"] if results["average"] else [])
    return [(lang, metric) for lang in langs for metric in results["metrics"]]


def _ours_cell(ours: dict | None, lang: str, metric: str) -> str:
    from c2kd.evaluation.report import format_result

    value = (ours or {}).get(lang, {}).get(metric)
    return "-" if value is None else format_result(value)


def markdown_report(results: dict) -> str:
    """One markdown table: for each run a row of ours (mean ± std over seeds) and a row of the paper's."""
    from c2kd.evaluation.report import markdown_table

    cols = _columns(results)
    multi = len(results["metrics"]) > 1
    header = ["Model", "Set", "Source"] + [
        (("Avg" if lang == "average" else lang) + (f" {metric}" if multi else "")) for lang, metric in cols]
    table_rows = []
    guarded_any = False
    for row in results["rows"]:
        n = len(row["seeds"])
        seeds = f"{n} seed{'s' if n != 1 else ''}"
        table_rows.append([row["label"], row["setting"], f"ours ({seeds})",
                           *(_ours_cell(row["ours"], lang, m) for lang, m in cols)])
        if row.get("guarded"):
            guarded_any = True
            blocked = row.get("blocked_by") or {}
            why = "; blocked by " + ", ".join(f"{lang} in {k}" for lang, k in blocked.items()) if blocked else ""
            table_rows.append([row["label"], row["setting"], f"ours, guarded ({seeds}{why})",
                               *(_ours_cell(row["guarded"], lang, m) for lang, m in cols)])
        if row["paper"]:
            table_rows.append([row["label"], row["setting"], "paper",
                               *(f"{row['paper'][lang][m]:.1f}" if m in row["paper"].get(lang, {}) else "-"
                                 for lang, m in cols)])
    lines = [f"### {results['source']}: {results['title']}", "", markdown_table(header, table_rows)]
    if guarded_any:
        lines += ["", "ours: each run as trained, at its best epoch by the validation average (best-average/, the "
                  "paper's protocol). ours, guarded: best/, what c2kd hands to users (the best epoch in which no "
                  "language validates below the start); the languages named blocked a better epoch in that many "
                  "seeds."]
    if results["note"]:
        lines += ["", results["note"]]
    lines += ["", *(f"- {note}" for note in results["notes"])]
    if results["teachers"]:
        lines += ["", "Teachers (translate-train, text-to-video, average over languages):", ""]
        t_rows = []
        for name, res in results["teachers"].items():
            t_rows.append([name, *(_ours_cell(res, "average", m) for m in results["metrics"])])
        lines.append(markdown_table(["teacher", *(f"Avg {m}" for m in results["metrics"])], t_rows))
    return "\n".join(lines).rstrip() + "\n"
