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
    engine: str = typer.Option("local", help="local (this process; data-parallel under torchrun/SLURM) or ray "
                                             "(Ray Train workers, see --address; pip install 'c2kd[ray]')."),
    address: str | None = typer.Option(None, help="--engine ray: the cluster (auto, HOST:PORT); default "
                                                  "$RAY_ADDRESS, else a local cluster for this run."),
    workers: int = typer.Option(2, min=1, help="--engine ray: Ray Train workers (data-parallel processes)."),
    use_gpu: bool = typer.Option(False, help="--engine ray: one GPU per worker (NCCL)."),
) -> None:
    """Train a teacher or a student (stage zero-shot, translate-train or c2kd)."""
    from c2kd.errors import ConfigError
    from c2kd.evaluation.report import print_results
    from c2kd.io import output_errors
    from c2kd.runtime import set_cpu_threads
    from c2kd.train.config import load_config
    from c2kd.train.run import train

    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine {engine!r}: use local or ray")
    cfg = load_config(config, overrides or [])
    set_cpu_threads(threads)
    with output_errors(cfg.out_dir):  # names the run folder when a write fails without a path (tensorboard)
        if engine == "ray":
            from c2kd.train.ray_train import train_on_ray

            out = train_on_ray(cfg, resume=resume, workers=workers, use_gpu=use_gpu, address=address)
        else:
            out = train(cfg, resume=resume)
    typer.echo(f"run folder: {out} (best checkpoint: {out / 'best'})")
    test = out / "test_metrics.json"
    if test.exists():
        print_results(json.loads(test.read_text()), title=f"{cfg.stage} test", directions=("t2v",))


def register(app: typer.Typer) -> None:
    """Add ``train`` to the ``c2kd`` command."""
    app.command("train")(train_command)
