"""Commands ``c2kd import-data``, ``c2kd translate`` and ``c2kd reproduce`` (heavy imports inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from c2kd.errors import ConfigError


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise ConfigError(f"{what} {value!r} is not KEY=VALUE (e.g. train=train.pkl)")
        if key.strip() in out:
            raise ConfigError(f"{what} {key.strip()!r} is given twice")
        out[key.strip()] = rest.strip()
    return out


def _codes(value: Optional[str]) -> Optional[list[str]]:
    return None if not value else [v.strip() for v in value.split(",") if v.strip()]


def import_data_command(
    splits: list[str] = typer.Argument(
        ..., help="SPLIT=FILE.pkl for each split, e.g. train=train.pkl test=test.pkl"
    ),
    fmt: str = typer.Option(..., "--format", help="msrvtt, vatex, youcook2, rudder, or a layout .json file."),
    features: str = typer.Option("2d", "--features", help="2d (CLIP frame features) or 3d (S3D)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (resumable)."),
    test_csv: Optional[Path] = typer.Option(
        None,
        "--test-csv",
        help="Full listing of the test split (MSR-VTT: MSRVTT_JSFUSION_test.csv); videos "
        "it lists without features are counted as missing.",
    ),
    languages: Optional[str] = typer.Option(None, help="Comma-separated languages (default: the dataset's)."),
    name: Optional[str] = typer.Option(None, help="Dataset name (default: the format's)."),
) -> None:
    """Import the authors' released split files (pickled lists of dicts) into a c2kd dataset."""
    from c2kd.data.importers import get_layout, import_release

    split_files = _pairs(splits, "split")
    listings = {}
    if test_csv is not None:
        if "test" not in split_files:
            raise ConfigError(
                f"--test-csv lists the 'test' split, but no test=FILE was given ({sorted(split_files)})"
            )
        listings["test"] = test_csv
    report = import_release(
        get_layout(fmt), features, split_files, out, languages=_codes(languages), listings=listings, name=name
    )
    typer.echo(report.markdown())
    for split in report.splits.values():
        if split.ignored_keys:
            typer.echo(f"{split.split}: ignored keys {split.ignored_keys}")
        if split.listing_caption_mismatches:
            typer.echo(
                f"{split.split}: {split.listing_caption_mismatches} English caption(s) differ from the "
                "CSV; the pickle's were kept"
            )
    missing = {k: v for k, v in report.missing_videos.items() if v}
    if missing:
        typer.echo(f"videos without features, counted as misses at evaluation: {missing}")
    typer.echo(f"wrote {out} ({report.feature_dim}-d {features} features)")


def translate_command(
    dataset: Path = typer.Option(..., "--dataset", help="Dataset folder whose captions are translated."),
    to: str = typer.Option(..., "--to", help="Comma-separated target languages, e.g. de,fr,cs."),
    model: str = typer.Option(
        "Helsinki-NLP/opus-mt-en-{lang}",
        "--model",
        help="Hugging Face seq2seq model; {lang} = one model per language, else a multi-target model "
        "(e.g. facebook/nllb-200-distilled-600M, facebook/m2m100_418M).",
    ),
    source: str = typer.Option("en", "--source", help="Language of the captions to translate."),
    splits: Optional[str] = typer.Option(None, "--splits", help="Comma-separated splits (default: all)."),
    code: list[str] = typer.Option(
        [], "--code", help="LANG=CODE for the model's language code, e.g. sw=swc."
    ),
    batch_size: int = typer.Option(32, "--batch-size"),
    chunk_size: int = typer.Option(256, "--chunk-size", help="Captions per saved chunk (the resume unit)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
    num_beams: int = typer.Option(1, "--num-beams"),
    device: str = typer.Option("auto", "--device"),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, float16 or bfloat16."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="CPU threads for torch (default: torch's)."
    ),
    work_dir: Optional[Path] = typer.Option(
        None, "--work-dir", help="Chunk folder (default DATASET/.translate/KEY)."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace captions a target language already has."),
) -> None:
    """Machine-translate a dataset's captions into new languages (resumable; adds aligned caption rows)."""
    from c2kd.translate import Translator, coverage_table, translate_dataset

    translator = Translator(
        model,
        source=source,
        codes=_pairs(code, "--code"),
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        threads=threads,
    )
    coverage = translate_dataset(
        dataset,
        _codes(to) or [],
        translator,
        splits=_codes(splits),
        work_dir=work_dir,
        chunk_size=chunk_size,
        replace=replace,
    )
    typer.echo(coverage_table(coverage))
    typer.echo(f"wrote {dataset / 'captions.parquet'}")


def reproduce_command(
    recipe: Optional[str] = typer.Argument(
        None, help="table2, table3, table4, figure2..figure5, or a recipe .yaml file (see --list)."
    ),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder the recipe trains on."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds 0..N-1 per run (the paper averages three)."),
    work: Path = typer.Option(Path("reproduce-work"), "--work", help="Folder of runs and results (resumable)."),
    override: list[str] = typer.Option(
        [], "--override", help="key=value for every run, or NAME:key=value for one run/teacher (repeatable)."
    ),
    runs: Optional[str] = typer.Option(None, "--runs", help="Comma-separated run names (default: all)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results JSON here."),
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

    plan = plan_recipe(load_recipe(recipe), data, work, seeds, override, _codes(runs))
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
    """Top-level ``import-data``, ``translate`` (to be folded under ``c2kd data`` later) and ``reproduce``."""
    app.command("import-data")(import_data_command)
    app.command("translate")(translate_command)
    app.command("reproduce")(reproduce_command)
