"""Commands ``c2kd evaluate`` and ``c2kd aggregate`` (heavy imports inside the commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from c2kd.options import comma_list

if TYPE_CHECKING:  # pragma: no cover
    from c2kd.evaluation.metrics import MissingRanks, TiePolicy


def evaluate_command(
    checkpoint: list[Path] = typer.Option(..., help="Checkpoint folder or run folder (uses best/). Repeat it to "
                                                     "evaluate the late fusion of several models (weighted sum "
                                                     "of their cosines)."),
    data: list[Path] = typer.Option(..., help="Dataset folder; with several checkpoints, one per checkpoint "
                                              "(each model reads its own frame features of the same videos), "
                                              "or one for all."),
    weights: str | None = typer.Option(None, help="Late fusion: comma-separated weight per checkpoint (default: "
                                                  "chosen on --choose-on from 1 for the first and 0, 0.25, 0.5, "
                                                  "1, 2, 3 for each other)."),
    choose_on: str = typer.Option("val", help="Late fusion: the split the weights are chosen on."),
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
    from c2kd.data.dataset import VideoTextDataset
    from c2kd.errors import ConfigError
    from c2kd.evaluation.evaluator import RetrievalEvaluator
    from c2kd.evaluation.metrics import MISSING_RANKS, TIE_POLICIES
    from c2kd.evaluation.report import print_results
    from c2kd.formats import load_model
    from c2kd.io import check_writable, write_json
    from c2kd.runtime import resolve_device
    from c2kd.search.extracting import check_store_encoder

    for option, value, allowed in (("--tie-policy", tie_policy, TIE_POLICIES),
                                   ("--missing-ranks", missing_ranks, MISSING_RANKS)):
        if value not in allowed:
            raise ConfigError(f"{option} {value!r} is not one of {', '.join(allowed)}")
    if plot is not None:
        from c2kd.evaluation.plots import check_plot_path

        check_plot_path(plot)  # before the evaluation, not after it
    if json_out is not None:
        check_writable(json_out, "--json")
    datasets = member_datasets(checkpoint, data)
    members = []
    for path, folder in zip(checkpoint, datasets, strict=True):
        model = load_model(path, device=resolve_device(device))
        check_store_encoder(model, VideoTextDataset(folder).features, path)
        members.append(model)
    dataset = VideoTextDataset(datasets[0])
    langs = comma_list(languages) or dataset.languages
    options: dict[str, Any] = {"tie_policy": cast("TiePolicy", tie_policy), "batch_size": batch_size,
                               "missing_ranks": cast("MissingRanks", missing_ranks)}  # checked above
    if len(checkpoint) == 1:
        results = RetrievalEvaluator(dataset.split(split, langs), langs, **options)(members[0])
    else:
        from c2kd.evaluation.fusion import fuse_models

        fixed = fusion_weights(weights, len(checkpoint)) if weights else None
        results = fuse_models(members, datasets, langs, split, fixed, choose_on, [str(c) for c in checkpoint],
                              **options)
        fusion = results["fusion"]
        chosen = f" (chosen on {choose_on})" if fusion["chosen_on"] else ""
        typer.echo(f"late fusion of {len(checkpoint)} models, weights {fusion['weights']}{chosen}")
    print_results(results, title=f"{dataset.name}/{split}")
    if results["protocol"]["missing_videos"]:
        typer.echo(f"{results['protocol']['missing_videos']} video(s) without features counted as misses")
    if json_out:
        write_json(json_out, results)
        typer.echo(f"wrote {json_out}")
    if plot is not None:
        from c2kd.evaluation.plots import recall_figure, save_png

        name = label or " + ".join(_run_name(path) for path in checkpoint)
        typer.echo(f"wrote {save_png(recall_figure({name: results}, title=f'{dataset.name}/{split}'), plot)}")


def member_datasets(checkpoints: list[Path], data: list[Path]) -> list[Path]:
    """The dataset folder of each ``--checkpoint``: one ``--data`` each, in the same order, or one for all."""
    from c2kd.errors import ConfigError

    if len(data) not in (1, len(checkpoints)):
        raise ConfigError(f"{len(checkpoints)} --checkpoint and {len(data)} --data: give one --data per "
                          "--checkpoint (in the same order), or one for all")
    return list(data) * len(checkpoints) if len(data) == 1 else list(data)


def fusion_weights(text: str, members: int) -> list[float]:
    """``--weights 1,0.5`` as numbers, one per member."""
    from c2kd.errors import ConfigError

    try:
        values = [float(w) for w in text.split(",")]
    except ValueError:
        values = []
    if len(values) != members:
        raise ConfigError(f"--weights {text!r}: give one number per --checkpoint ({members}), e.g. "
                          f"{','.join(['1'] * members)}")
    return values


def _run_name(checkpoint: Path) -> str:
    """A checkpoint's name for people: its run folder's (``runs/c2kd/best`` -> ``c2kd``)."""
    from c2kd.formats import BEST_AVERAGE_DIR, BEST_DIR, LAST_DIR

    path = checkpoint.resolve()
    return path.parent.name if path.name in (BEST_DIR, BEST_AVERAGE_DIR, LAST_DIR) else path.name


def aggregate_command(
    results: list[Path] = typer.Argument(..., help="Result JSON files of the same setting (one per seed)."),
    json_out: Path | None = typer.Option(None, "--json"),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw R@1 per language with error bars of one "
                                                             "std as this PNG file (needs c2kd[plots])."),
    label: str | None = typer.Option(None, "--label", help="The setting's name in the plot."),
) -> None:
    """Mean and standard deviation over seeds."""
    from c2kd.evaluation.report import aggregate_runs, print_results
    from c2kd.io import check_writable, write_json

    if plot is not None:
        from c2kd.evaluation.plots import check_plot_path

        check_plot_path(plot)
    if json_out is not None:
        check_writable(json_out, "--json")
    agg = aggregate_runs([json.loads(p.read_text()) for p in results])
    print_results(agg, title=f"mean ± std over {len(results)} runs")
    if json_out:
        write_json(json_out, agg)
    if plot is not None:
        from c2kd.evaluation.plots import recall_figure, save_png

        name = label or f"mean of {len(results)} runs"
        fig = recall_figure({name: agg}, title=f"mean ± std over {len(results)} runs")
        typer.echo(f"wrote {save_png(fig, plot)}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` and ``aggregate`` to the ``c2kd`` command."""
    app.command("evaluate")(evaluate_command)
    app.command("aggregate")(aggregate_command)
