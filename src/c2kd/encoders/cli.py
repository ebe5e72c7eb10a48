"""Commands ``c2kd model aligned|random-text``: checkpoints and models made without training."""

from __future__ import annotations

from pathlib import Path

import typer

model_app = typer.Typer(help="Create models: training-free aligned checkpoints; small random models for tests.",
                        no_args_is_help=True)


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
    from c2kd.options import parse_encoder_options
    from c2kd.zeroshot import aligned_checkpoint

    options = parse_encoder_options(frame_option)
    if frame_model is not None:
        options["model"] = frame_model
    path = aligned_checkpoint(out, text=text, frame_encoder=frame_encoder, fuse=fuse or [],
                              frame_options=options, trainable=trainable, residual_hidden=residual_hidden)
    from c2kd.checkpoint import checkpoint_frame_encoder

    spec = checkpoint_frame_encoder(path)
    typer.echo(f"wrote {path}: text {text}{' + ' + ' + '.join(fuse) if fuse else ''} vs frames of "
               f"{spec.describe() if spec else frame_encoder}")


def register(app: typer.Typer) -> None:
    """Add the ``model`` group to the ``c2kd`` command."""
    app.add_typer(model_app, name="model")
