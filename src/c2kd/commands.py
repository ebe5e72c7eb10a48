"""Core commands: train, evaluate, aggregate, data (synthetic, check), languages, model (aligned, random-text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

if TYPE_CHECKING:  # pragma: no cover
    from c2kd.evaluation.metrics import MissingRanks, TiePolicy

data_app = typer.Typer(help="Make, check and import datasets.", no_args_is_help=True)
model_app = typer.Typer(help="Create models: training-free aligned checkpoints; small random models for tests.",
                        no_args_is_help=True)


def _split_codes(value: str | None) -> list[str] | None:
    return None if not value else [v.strip() for v in value.split(",") if v.strip()]


def train_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (see configs/)."),
    overrides: list[str] | None = typer.Argument(None, help="key.path=value overrides, e.g. loss.alpha=0.5"),
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


def evaluate_command(
    checkpoint: Path = typer.Option(..., help="Checkpoint folder or run folder (uses best/)."),
    data: Path = typer.Option(..., help="Dataset folder."),
    split: str = typer.Option("test", help="Split to evaluate."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results here as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw R@1 per language (t2v, v2t) as this PNG "
                                                             "file (needs c2kd[plots])."),
    label: str | None = typer.Option(None, "--label", help="The model's name in the plot (default: the run "
                                                               "folder's name)."),
    languages: str | None = typer.Option(None, help="Comma-separated languages (default: all of the dataset)."),
    tie_policy: str = typer.Option("average", help="Rank of a correct video tied with wrong ones: average, "
                                                    "pessimistic, or optimistic (what the original code computed)."),
    missing_ranks: str = typer.Option("gallery", help="MedR/MeanR of queries whose video has no features: gallery "
                                                      "(ranked at the gallery size) or present (left out, as the "
                                                      "original code did). Both count them as misses in R@K."),
    batch_size: int = typer.Option(256),
    device: str = typer.Option("auto"),
) -> None:
    """Text-to-video and video-to-text R@1/5/10, MedR, MeanR per language and averaged."""
    from c2kd.checkpoint import load_checkpoint
    from c2kd.data.dataset import VideoTextDataset
    from c2kd.errors import ConfigError
    from c2kd.evaluation.evaluator import RetrievalEvaluator
    from c2kd.evaluation.metrics import MISSING_RANKS, TIE_POLICIES
    from c2kd.evaluation.report import print_results
    from c2kd.io import write_json
    from c2kd.search.extracting import check_store_encoder
    from c2kd.train.run import resolve_device

    for option, value, allowed in (("--tie-policy", tie_policy, TIE_POLICIES),
                                   ("--missing-ranks", missing_ranks, MISSING_RANKS)):
        if value not in allowed:
            raise ConfigError(f"{option} {value!r} is not one of {', '.join(allowed)}")
    if plot is not None:
        from c2kd.evaluation.plots import check_plot_path

        check_plot_path(plot)  # before the evaluation, not after it
    model, _ = load_checkpoint(checkpoint, device=resolve_device(device))
    dataset = VideoTextDataset(data)
    check_store_encoder(model, dataset.features, checkpoint)
    langs = _split_codes(languages) or dataset.languages
    results = RetrievalEvaluator(dataset.split(split, langs), langs, cast("TiePolicy", tie_policy), batch_size,
                                 missing_ranks=cast("MissingRanks", missing_ranks))(model)  # checked above
    print_results(results, title=f"{dataset.name}/{split}")
    if results["protocol"]["missing_videos"]:
        typer.echo(f"{results['protocol']['missing_videos']} video(s) without features counted as misses")
    if json_out:
        write_json(json_out, results)
        typer.echo(f"wrote {json_out}")
    if plot is not None:
        from c2kd.evaluation.plots import recall_figure, save_png

        name = label or _run_name(checkpoint)
        typer.echo(f"wrote {save_png(recall_figure({name: results}, title=f'{dataset.name}/{split}'), plot)}")


def _run_name(checkpoint: Path) -> str:
    """A checkpoint's name for people: its run folder's (``runs/c2kd/best`` -> ``c2kd``)."""
    path = checkpoint.resolve()
    return path.parent.name if path.name in ("best", "last") else path.name


def aggregate_command(
    results: list[Path] = typer.Argument(..., help="Result JSON files of the same setting (one per seed)."),
    json_out: Path | None = typer.Option(None, "--json"),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw R@1 per language with error bars of one "
                                                             "std as this PNG file (needs c2kd[plots])."),
    label: str | None = typer.Option(None, "--label", help="The setting's name in the plot."),
) -> None:
    """Mean and standard deviation over seeds."""
    from c2kd.evaluation.report import aggregate_runs, print_results
    from c2kd.io import write_json

    if plot is not None:
        from c2kd.evaluation.plots import check_plot_path

        check_plot_path(plot)
    agg = aggregate_runs([json.loads(p.read_text()) for p in results])
    print_results(agg, title=f"mean ± std over {len(results)} runs")
    if json_out:
        write_json(json_out, agg)
    if plot is not None:
        from c2kd.evaluation.plots import recall_figure, save_png

        name = label or f"mean of {len(results)} runs"
        fig = recall_figure({name: agg}, title=f"mean ± std over {len(results)} runs")
        typer.echo(f"wrote {save_png(fig, plot)}")


@data_app.command("synthetic")
def data_synthetic(
    out: Path = typer.Option(..., help="Output dataset folder."),
    train: int = typer.Option(400), val: int = typer.Option(80), test: int = typer.Option(120),
    languages: str = typer.Option("en,de,fr,cs"),
    captions: int = typer.Option(5, help="Captions per video."),
    dim: int = typer.Option(64, help="Frame feature size."),
    missing_test: int = typer.Option(0, help="Test videos listed without features (counted as misses)."),
    seed: int = typer.Option(0),
) -> None:
    """Generate a small learnable multilingual dataset (non-English captions noisier than English)."""
    from c2kd.data.synthetic import SyntheticConfig, generate_synthetic

    cfg = SyntheticConfig(n_train=train, n_val=val, n_test=test, languages=_split_codes(languages) or ["en"],
                          captions_per_video=captions, feature_dim=dim, missing_test_videos=missing_test, seed=seed)
    typer.echo(f"wrote {generate_synthetic(out, cfg)}")


@data_app.command("check")
def data_check(path: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Validate a dataset (captions, languages, features: NaN/inf, dimensions) and summarise it.

    A dataset with a train split is also checked as `c2kd train` reads it by default: every training video has
    features and captions in every language, and a val split exists.
    """
    from rich.console import Console
    from rich.table import Table

    from c2kd.data.dataset import VideoTextDataset
    from c2kd.train.config import DataConfig

    ds = VideoTextDataset(path)
    table = Table(title=f"{ds.name}: {len(ds.features)} videos with {ds.features.dim}-d features")
    for col in ("split", "videos", "missing", "no text", *ds.languages):
        table.add_column(col, justify="right")
    for name in ds.splits:
        s = ds.split(name)
        counts = [str(sum(1 for r in s.captions[lang] for c in r if c is not None)) for lang in ds.languages]
        table.add_row(name, str(len(s)), str(len(s.missing_video_ids)), str(s.blank_captions), *counts)
    Console().print(table)
    defaults = DataConfig(path=str(path))  # the splits `c2kd train` reads unless told otherwise
    if defaults.train_split in ds.splits:
        ds.check_trainable(defaults.train_split, defaults.val_split)
        typer.echo("ok: no problems found")
    else:
        typer.echo(f"ok: no problems found; no {defaults.train_split!r} split, so the dataset serves evaluation only")


def languages_command() -> None:
    """List the language codes c2kd knows (queries in any of them are accepted)."""
    from c2kd.languages import ALIASES, LANGUAGES

    for code, name in LANGUAGES.items():
        aliases = [a for a, c in ALIASES.items() if c == code]
        typer.echo(f"{code:4s} {name}" + (f"  (also: {', '.join(aliases)})" if aliases else ""))


@model_app.command("random-text")
def model_random_text(
    corpus: Path = typer.Option(..., help="Dataset folder whose captions make the vocabulary."),
    out: Path = typer.Option(..., help="Output folder (a Hugging Face model directory)."),
    hidden: int = typer.Option(64), layers: int = typer.Option(2), heads: int = typer.Option(2),
    seed: int = typer.Option(0), architecture: str = typer.Option("bert", help="bert or xlm-roberta"),
) -> None:
    """A small random-config Hugging Face text model with a word-level tokenizer (no hub needed)."""
    import pyarrow.parquet as pq

    from c2kd.data.dataset import CAPTIONS_FILE
    from c2kd.encoders.random_hf import make_random_text_model

    texts = pq.read_table(corpus / CAPTIONS_FILE, columns=["text"]).column("text").to_pylist()
    make_random_text_model(out, texts, hidden=hidden, layers=layers, heads=heads, seed=seed,
                           architecture=architecture)
    typer.echo(f"wrote {out}")


@model_app.command("aligned")
def model_aligned(
    text: str = typer.Option(..., help="Aligned text backbone: mclip-vit-b32 (multilingual CLIP), "
                                       "clip-vit-b32-text, a CLIP folder, st:FOLDER (sentence-transformers "
                                       "layout), packaged-muse (Multi30K proxy), ..."),
    frame_encoder: str = typer.Option(..., help="What the video tower reads: clip-vit-b32 (or another encoder of "
                                                "`c2kd extract`), or packaged-muse for the Multi30K proxy."),
    out: Path = typer.Option(..., help="Checkpoint folder to write."),
    fuse: list[str] | None = typer.Option(None, "--fuse", help="Further frozen text backbone (repeatable), "
                                                                  "e.g. packaged-e5-small."),
    frame_model: str | None = typer.Option(None, help="The frame encoder's model: CLIP hub id or folder "
                                                         "(default: the CLIP text tower's own checkpoint), ONNX "
                                                         "file."),
    frame_option: list[str] | None = typer.Option(None, "--frame-option",
                                                     help="Frame encoder option key=value (repeatable)."),
    trainable: bool | None = typer.Option(None, "--trainable/--frozen",
                                             help="Whether later training may fine-tune the text backbone "
                                                  "(default: when it can be)."),
    residual_hidden: int = typer.Option(1024, help="Width of the text head's zero-initialised residual MLP."),
) -> None:
    """A checkpoint that needs no training: text backbone vector vs mean of frame features, by cosine.

    For search over real videos in many languages: --text mclip-vit-b32 --frame-encoder clip-vit-b32, then
    `c2kd extract VIDEOS --checkpoint OUT --out STORE`, `c2kd index build`, `c2kd search`.
    """
    from c2kd.features.cli import parse_options
    from c2kd.zeroshot import aligned_checkpoint

    options = parse_options(frame_option)
    if frame_model is not None:
        options["model"] = frame_model
    path = aligned_checkpoint(out, text=text, frame_encoder=frame_encoder, fuse=fuse or [],
                              frame_options=options, trainable=trainable, residual_hidden=residual_hidden)
    from c2kd.checkpoint import checkpoint_frame_encoder

    spec = checkpoint_frame_encoder(path)
    typer.echo(f"wrote {path}: text {text}{' + ' + ' + '.join(fuse) if fuse else ''} vs frames of "
               f"{spec.describe() if spec else frame_encoder}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.command("aggregate")(aggregate_command)
    app.command("languages")(languages_command)
    app.add_typer(data_app, name="data")
    app.add_typer(model_app, name="model")
