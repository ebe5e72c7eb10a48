"""Command ``c2kd reproduce`` (heavy imports inside the command)."""

from __future__ import annotations

from pathlib import Path

import typer

from c2kd.errors import ConfigError
from c2kd.options import comma_list


def reproduce_command(
    recipe: str | None = typer.Argument(
        None, help="table2, table3, table4, figure2..figure5, or a recipe .yaml file (see --list)."
    ),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder the recipe trains on."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds 0..N-1 per run (the paper averages three)."),
    work: Path = typer.Option(Path("reproduce-work"), "--work", help="Folder of runs and results (resumable)."),
    override: list[str] = typer.Option(
        [], "--override", metavar="KEY=VALUE", help="key=value for every run, or NAME:key=value for one run/teacher (repeatable)."
    ),
    runs: str | None = typer.Option(None, "--runs", help="Comma-separated run names (default: all)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the results JSON here."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (runs, folders, done or not) only."),
    list_: bool = typer.Option(False, "--list", help="List the recipes and exit."),
) -> None:
    """Train the teachers, then the students of a paper experiment over seeds; print ours beside the paper's."""
    from c2kd.reproduce.recipes import list_recipes, load_recipe

    if list_:
        for name in list_recipes():
            r = load_recipe(name)
            typer.echo(f"{name:8s} {r.source}: {r.title} ({len(r.runs)} runs, {len(r.teachers)} teachers)")
        return
    if recipe is None or data is None:
        raise ConfigError("give a recipe and --data DIR, e.g. `c2kd reproduce table2 --data datasets/multi-msrvtt`")
    from c2kd.evaluation.plots import png_or_reason, recipe_figure
    from c2kd.io import write_json, write_text
    from c2kd.reproduce.runner import collect, execute, markdown_report, plan_recipe
    from c2kd.train.distributed import detect_env

    plan = plan_recipe(load_recipe(recipe), data, work, seeds, override, comma_list(runs))
    if dry_run:
        for run in plan.runs:
            state = "done" if run.finished else "todo"
            typer.echo(f"{state}  {run.kind:7s} {run.name:32s} seed {run.seed}  {run.folder}")
        return
    execute(plan)
    if not detect_env().is_main:
        return
    results = collect(plan)
    report = markdown_report(results)
    out = plan.work / "results"
    write_json(out / f"{plan.recipe.name}.json", results)
    write_text(out / f"{plan.recipe.name}.md", report)
    if json_out is not None:
        write_json(json_out, results)
    typer.echo(report)
    typer.echo(f"wrote {out / (plan.recipe.name + '.json')} and .md")
    typer.echo(png_or_reason(out / f"{plan.recipe.name}.png", lambda: recipe_figure(results)))


def register(app: typer.Typer) -> None:
    """Add ``reproduce`` to the ``c2kd`` command."""
    app.command("reproduce")(reproduce_command)
