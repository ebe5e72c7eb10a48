"""Commands ``c2kd model aligned|download|fuse|random-text``: checkpoints made without training, by fusing others,
and the hub models they need, fetched for later offline use."""

from __future__ import annotations

from pathlib import Path

import typer

model_app = typer.Typer(help="Create models: training-free aligned checkpoints, fused checkpoints; small random "
                             "models for tests.",
                        no_args_is_help=True)


@model_app.command("random-text")
def model_random_text(
    corpus: Path = typer.Option(..., help="Dataset folder whose captions make the vocabulary."),
    out: Path = typer.Option(..., help="Output folder (a Hugging Face model directory)."),
    hidden: int = typer.Option(64), layers: int = typer.Option(2), heads: int = typer.Option(2),
    seed: int = typer.Option(0), architecture: str = typer.Option("bert", help="bert or xlm-roberta"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT even when it holds files c2kd did not "
                                                              "write there (they are deleted)."),
) -> None:
    """A small random-config Hugging Face text model with a word-level tokenizer (no hub needed)."""
    import pyarrow.parquet as pq

    from c2kd.data.dataset import CAPTIONS_FILE
    from c2kd.encoders.random_hf import RANDOM_TEXT_MARKER, make_random_text_model
    from c2kd.io import check_output

    check_output(out, RANDOM_TEXT_MARKER, inputs=[corpus], overwrite=overwrite)
    texts = pq.read_table(corpus / CAPTIONS_FILE, columns=["text"]).column("text").to_pylist()
    make_random_text_model(out, texts, hidden=hidden, layers=layers, heads=heads, seed=seed,
                           architecture=architecture, overwrite=overwrite)
    typer.echo(f"wrote {out}")


@model_app.command("download")
def model_download(
    names: list[str] = typer.Argument(..., help="Text backbone presets (e.g. mclip-vit-b32: its text tower and the "
                                                "CLIP frame model it is aligned with; siglip2-base-patch16-256-text), "
                                                "frame encoder presets that a text preset is aligned with (e.g. "
                                                "siglip2-base-patch16-256: both towers) or hub ids."),
    out: Path = typer.Option(..., help="Folder to put one model folder in per hub model."),
    url: str | None = typer.Option(None, help="Address of the authors' weights archive (default: the one in their "
                                              "README; file:// for a local copy)."),
    archive: Path | None = typer.Option(None, help="The authors' weights archive already downloaded."),
    member: str | None = typer.Option(None, help="The .pth inside the authors' archive to import (default: the "
                                                 "one whose path names the release's data set)."),
    text_backbone: str | None = typer.Option(None, help="For the authors' models: hub id or folder of the text "
                                                        "model's config and tokenizer (default: the one their "
                                                        "class names, e.g. sentence-transformers/LaBSE)."),
) -> None:
    """Fetch the hub models that NAMES load (both towers of an aligned pair) into folders under OUT, for use
    where there is no hub; prints the `model aligned` command that reads them. The authors' released models
    (authors-msrvtt, authors-youcook2, authors-vatex, authors-rudder) come from their weights archive and are
    imported into OUT/NAME."""
    from c2kd.authors.release import RELEASES, WEIGHTS_URL, download_release
    from c2kd.zeroshot import (
        aligned_pair,
        download_hub_models,
        hub_models,
        offline_aligned_command,
        record_download,
    )

    for name in [n for n in names if n in RELEASES]:
        folder, member = download_release(name, out, url=url or WEIGHTS_URL, archive=archive, member=member,
                                          text_backbone=text_backbone)
        typer.echo(f"{name}: {member} -> {folder} (evaluate, index build, search, serve and moments read it)")
    names = [n for n in names if n not in RELEASES]
    if not names:
        return

    pairs = {name: aligned_pair(name) for name in names}
    per_name = {name: hub_models([text], frames, {}) for name, (text, frames) in pairs.items()}
    wanted = {model[0]: model for models in per_name.values() for model in models}  # each hub model once
    if not wanted:
        typer.echo(f"nothing to download: {', '.join(names)} ship(s) in Python packages")
        return
    folders = dict(zip(wanted, download_hub_models(list(wanted.values()), out)))
    for source, what, _, _ in wanted.values():
        typer.echo(f"{what} {source} -> {folders[source]}")
    for name, models in per_name.items():
        text, frames = pairs[name]
        fetched = folders[models[0][0]] if models else None
        if fetched is not None and frames and fetched.resolve().is_relative_to(out.resolve()):
            record_download(fetched, text, frames)  # the text tower's folder: one side of a known pair
    for name, models in per_name.items():
        frames = pairs[name][1]
        if models and frames:
            typer.echo(f"offline, for {name}: {offline_aligned_command(models, frames, folders)} --out MODEL")


@model_app.command("import-authors")
def model_import_authors(
    checkpoint: Path = typer.Argument(..., help="A .pth written by the C2KD authors' trainer (e.g. "
                                               "latest_model.pth of their weights archive)."),
    out: Path = typer.Option(..., help="Checkpoint folder to write."),
    text_backbone: str | None = typer.Option(None, help="Hub id or folder of the text model's config and "
                                                        "tokenizer (default: the one their class names, e.g. "
                                                        "sentence-transformers/LaBSE); its weights come from the "
                                                        "checkpoint."),
    frame_encoder: str | None = typer.Option(None, help="What the video side reads, as recorded for the checks "
                                                        "of evaluate / index build (default: clip-vit-b32 for "
                                                        "512-d frames, s3d for 1024-d)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT even when it holds files c2kd did not "
                                                              "write there (they are deleted)."),
) -> None:
    """Import a model of the C2KD authors (their BaselineTokenFusionPerModModel* student or teachers): read
    without running pickled code, weights mapped by name; evaluate, index build, search, serve and moments
    read the folder like any other checkpoint."""
    from c2kd.authors.checkpoint import describe
    from c2kd.authors.importer import import_authors_checkpoint

    import_authors_checkpoint(checkpoint, out, text_backbone=text_backbone, frame_encoder=frame_encoder,
                              overwrite=overwrite)
    typer.echo(f"wrote {out}: {describe(out)}")


@model_app.command("aligned")
def model_aligned(
    text: str = typer.Option(..., help="Aligned text backbone: siglip2-base-patch16-256-text (SigLIP 2), "
                                       "siglip-base-patch16-256-multilingual-text, mclip-vit-b32 (multilingual "
                                       "CLIP), clip-vit-b32-text, a CLIP or SigLIP folder, st:FOLDER "
                                       "(sentence-transformers layout), packaged-muse (Multi30K proxy), ..."),
    frame_encoder: str = typer.Option(..., help="What the video tower reads: siglip2-base-patch16-256, siglip "
                                                "(--frame-model a SigLIP folder or hub id), clip-vit-b32 (or another "
                                                "encoder of `c2kd extract`), or packaged-muse for the Multi30K "
                                                "proxy."),
    out: Path = typer.Option(..., help="Checkpoint folder to write."),
    mix: list[str] | None = typer.Option(None, "--mix", help="Further frozen text backbone read beside --text "
                                                                "(the backbone mix; repeatable), e.g. "
                                                                "packaged-e5-small."),
    old_mix: list[str] | None = typer.Option(None, "--fuse", hidden=True,
                                                help="The old name of --mix (not `c2kd model fuse`)."),
    frame_model: str | None = typer.Option(None, help="The frame encoder's model: CLIP or SigLIP hub id or folder "
                                                         "(default: the CLIP or SigLIP text tower's own "
                                                         "checkpoint), ONNX file."),
    frame_option: list[str] | None = typer.Option(None, "--frame-option", metavar="KEY=VALUE",
                                                     help="Frame encoder option key=value (repeatable)."),
    trainable: bool | None = typer.Option(None, "--trainable/--frozen",
                                             help="Whether later training may fine-tune the text backbone "
                                                  "(default: when it can be)."),
    residual_hidden: int = typer.Option(1024, help="Width of the text head's zero-initialised residual MLP."),
    declared_aligned: bool = typer.Option(False, "--i-know-they-are-aligned",
                                          help="Build a pair c2kd does not know to share one space (your own "
                                               "towers trained together); recorded in the checkpoint and shown "
                                               "by `c2kd serve`."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT even when it holds files c2kd did not "
                                                              "write there (they are deleted)."),
) -> None:
    """A checkpoint that needs no training: text backbone vector vs mean of frame features, by cosine.

    For search over real videos in many languages: --text siglip2-base-patch16-256-text --frame-encoder
    siglip2-base-patch16-256 (or --text mclip-vit-b32 --frame-encoder clip-vit-b32), then `c2kd extract VIDEOS
    --checkpoint OUT --out STORE`, `c2kd index build`, `c2kd search` (docs/search.md).
    """
    from c2kd.formats import CHECKPOINT_MARKER
    from c2kd.io import check_output
    from c2kd.options import parse_encoder_options
    from c2kd.zeroshot import aligned_checkpoint

    options = parse_encoder_options(frame_option)
    if frame_model is not None:
        options["model"] = frame_model
    local = [Path(p) for p in (text, *(mix or []), frame_model) if p and Path(p).expanduser().exists()]
    check_output(out, CHECKPOINT_MARKER, inputs=local, overwrite=overwrite)
    mix = [*(mix or []), *(old_mix or [])]
    if old_mix:
        typer.echo("--fuse is now --mix (the backbone mix; `c2kd model fuse` makes fused checkpoints)", err=True)
    path = aligned_checkpoint(out, text=text, frame_encoder=frame_encoder, mix=mix,
                              frame_options=options, trainable=trainable, residual_hidden=residual_hidden,
                              overwrite=overwrite, declared_aligned=declared_aligned)
    from c2kd.encoders.frames import describe_parts
    from c2kd.formats import checkpoint_frame_encoder

    spec = checkpoint_frame_encoder(path)
    typer.echo(f"wrote {path}: text {text}{' + ' + ' + '.join(mix) if mix else ''} vs frames of "
               f"{describe_parts(spec) if spec else frame_encoder}")


@model_app.command("fuse")
def model_fuse(
    checkpoint: list[Path] = typer.Option(..., help="Checkpoint or run folder of a member (repeat it: two or more)."),
    out: Path = typer.Option(..., help="Fused checkpoint folder to write."),
    weights: str | None = typer.Option(None, help="Comma-separated weight per checkpoint, e.g. 1,1 (default: "
                                                  "chosen on --choose-on of --data, from 1 for the first and 0, "
                                                  "0.25, 0.5, 1, 2, 3 for each other)."),
    data: list[Path] | None = typer.Option(None, help="Dataset folder the weights are chosen on: one per "
                                                      "checkpoint (each member reads its own frame features of "
                                                      "the same videos), or one for all."),
    choose_on: str = typer.Option("val", help="The split the weights are chosen on."),
    languages: str | None = typer.Option(None, help="Comma-separated languages to choose on (default: all)."),
    device: str = typer.Option("auto"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT even when it holds files c2kd did not "
                                                              "write there (they are deleted)."),
) -> None:
    """One checkpoint from several: scores add up, weighted (late fusion), and index, search, serve and moments
    use it like any other model.

    Members that read different frame encoders read their features side by side: `c2kd extract --checkpoint
    FUSED` makes them, and `c2kd data concat-features` joins stores made apart (in the order of --checkpoint).
    """
    from c2kd.commands.evaluate import fusion_weights, member_datasets
    from c2kd.data.dataset import VideoTextDataset
    from c2kd.encoders.frames import describe_parts
    from c2kd.errors import ConfigError
    from c2kd.evaluation.fusion import choose_member_weights
    from c2kd.formats import CHECKPOINT_MARKER, checkpoint_frame_encoder, load_model
    from c2kd.fused import read_fusion, save_fused_checkpoint
    from c2kd.io import check_output
    from c2kd.options import comma_list
    from c2kd.runtime import resolve_device

    if len(checkpoint) < 2:
        raise ConfigError("give two or more --checkpoint to fuse")
    check_output(out, CHECKPOINT_MARKER, inputs=[*checkpoint, *(data or [])], overwrite=overwrite)
    chosen_on, validation = None, []
    if weights is not None:
        values = fusion_weights(weights, len(checkpoint))
    elif data:
        datasets = member_datasets(checkpoint, data)
        models = [load_model(c, device=resolve_device(device)) for c in checkpoint]
        langs = comma_list(languages) or VideoTextDataset(datasets[0]).languages
        values, candidates = choose_member_weights(models, datasets, langs, choose_on)
        chosen_on = choose_on
        validation = [{"weights": list(k), "t2v/average/R@1": v} for k, v in candidates.items()]
        typer.echo(f"weights {values} chosen on {choose_on} (t2v average R@1 {candidates[tuple(values)]:.2f}; "
                   f"the first model alone {candidates[tuple([1.0] + [0.0] * (len(values) - 1))]:.2f})")
    else:
        raise ConfigError("give --weights, or --data to choose them on the validation split")
    path = save_fused_checkpoint(out, checkpoint, values, chosen_on, validation, overwrite=overwrite)
    spec = checkpoint_frame_encoder(path)
    members = read_fusion(path).members
    typer.echo(f"wrote {path}: {len(members)} members, weights {[m.weight for m in members]}, reading "
               f"{describe_parts(spec) if spec else 'the frames of its members'}")


def register(app: typer.Typer) -> None:
    """Add the ``model`` group to the ``c2kd`` command."""
    app.add_typer(model_app, name="model")
