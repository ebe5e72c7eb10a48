"""Offline real-data commands: build the Multi30K proxy benchmark (and, later, the quickstart run)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def multi30k_proxy_command(
    out: Path = typer.Option(Path("data/multi30k-proxy"), "--out", "-o", help="Dataset folder to write."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Multi30K folder (with task1/ and task2/). Default: $C2KD_DATA, then ../shared/data, "
                             "then a download from the public Multi30K repository."),
    frame_encoder: str = typer.Option(
        "packaged-muse", help="Text backbone that encodes the proxy frames (a preset of c2kd.encoders.registry); "
                              "choose one that is neither the student's nor a teacher's text encoder."),
    max_train: Optional[int] = typer.Option(None, min=1, help="Keep only the first N training items (speed)."),
    max_eval: Optional[int] = typer.Option(None, min=1, help="Keep only the first N val and test items."),
    download: bool = typer.Option(True, help="Download Multi30K when it is not found locally."),
    batch_size: int = typer.Option(256, min=1),
) -> None:
    """Build the Multi30K PROXY dataset: captions in en/de/fr/cs; each item's 'video' is its four other English
    descriptions encoded as frames. It measures cross-lingual retrieval on real text, not vision."""
    from c2kd.data.multi30k import build_multi30k_proxy, locate_multi30k

    located = locate_multi30k(data, download=download)
    typer.echo(located.message)
    build_multi30k_proxy(out, located.root, frame_encoder=frame_encoder, max_train=max_train, max_eval=max_eval,
                         batch_size=batch_size, log=typer.echo)


def register(app: typer.Typer) -> None:
    app.command("multi30k-proxy")(multi30k_proxy_command)
