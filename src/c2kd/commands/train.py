"""Command ``c2kd train`` (heavy imports inside the command)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def train_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (see configs/)."),
    overrides: list[str] | None = typer.Argument(None, metavar="KEY=VALUE", help="key.path=value overrides, e.g. loss.alpha=0.5"),
    resume: bool = typer.Option(True, help="Continue the run in out_dir if it was interrupted."),
    threads: int = typer.Option(0, min=0, help="CPU threads for torch; 0 = auto (1 when the machine is busy)."),
) -> None:
    """Train a teacher or a student (stage zero-shot, translate-train or c2kd)."""
    from c2kd.evaluation.report import print_results
    from c2kd.io import output_errors
    from c2kd.runtime import set_cpu_threads
    from c2kd.train.config import load_config
    from c2kd.train.run import train

    cfg = load_config(config, overrides or [])
    set_cpu_threads(threads)
    with output_errors(cfg.out_dir):  # names the run folder when a write fails without a path (tensorboard)
        out = train(cfg, resume=resume)
    typer.echo(f"run folder: {out} (best checkpoint: {out / 'best'})")
    test = out / "test_metrics.json"
    if test.exists():
        print_results(json.loads(test.read_text()), title=f"{cfg.stage} test", directions=("t2v",))


def register(app: typer.Typer) -> None:
    """Add ``train`` to the ``c2kd`` command."""
    app.command("train")(train_command)
