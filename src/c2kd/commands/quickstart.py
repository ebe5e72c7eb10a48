"""``c2kd quickstart``: the command over :func:`c2kd.quickstart.run_quickstart`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from c2kd.quickstart import OFF_THE_SHELF, TEACHER_CHOICES, ProxySize, QuickstartSettings, run_quickstart


def quickstart_command(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="Folder for data, caches and runs."),
    data: Path | None = typer.Option(None, "--data", help="Multi30K folder (default: $C2KD_DATA, "
                                                             "../shared/data, or download)."),
    download: bool = typer.Option(True, help="Download Multi30K when it is not found locally."),
    max_train: int = typer.Option(2000, min=64, help="Training items (embedding captions with e5 is the slow part)."),
    max_val: int = typer.Option(500, min=16),
    max_test: int = typer.Option(1000, min=16),
    epochs: int = typer.Option(15, min=1),
    batch_size: int = typer.Option(128, min=2),
    lr: float = typer.Option(3e-4, help="Adam learning rate of the heads (backbones are frozen)."),
    seed: int = typer.Option(0),
    alpha: float = typer.Option(0.2, min=0.0, max=0.99, help="C2KD student: weight of NCE; 1 - alpha weighs C2KD."),
    teachers: str = typer.Option(
        OFF_THE_SHELF, help="C2KD teachers, all reading English: off-the-shelf (the pair), teacher-en (the pair "
                            "trained on English, trained first), e5-pair (e5 text vs e5 frames: embeds every "
                            "description with e5 once more), or a set pooled with --pooler: both (off-the-shelf + "
                            "teacher-en), pairs (off-the-shelf + e5-pair), all."),
    pooler: str = typer.Option("mean", help="With several teachers: how their scores are pooled (min, max, mean)."),
    device: str = typer.Option("auto"),
    threads: int = typer.Option(
        0, min=0, help="CPU threads for torch, and processes embedding captions with e5 (one thread each); 0 = auto "
                       "(1 when the machine is busy: on a loaded 2-core machine two OpenMP threads made a training "
                       "step ~10x and e5 ~2x slower)."),
    serve: bool | None = typer.Option(None, "--serve/--no-serve", help="Then index the test items with the C2KD "
                                                                       "student and serve the search page (default: "
                                                                       "ask on a terminal; not in a log)."),
    port: int = typer.Option(8000, help="--serve: the page's port (0: any free port)."),
) -> None:
    """Run C2KD end to end on real multilingual text with packaged models (no hub): Multi30K proxy data, the
    off-the-shelf baseline, zero-shot / translate-train / C2KD students started from it, per-language tables
    (t2v and v2t) and example queries."""
    from c2kd.runtime import set_cpu_threads
    from c2kd.similarity import POOLERS

    if teachers not in TEACHER_CHOICES:
        raise typer.BadParameter(f"{teachers!r}: choose one of {', '.join(TEACHER_CHOICES)}", param_hint="--teachers")
    if pooler not in POOLERS:
        raise typer.BadParameter(f"{pooler!r} is not a pooler; choose one of {', '.join(POOLERS)}",
                                 param_hint="--pooler")
    used = set_cpu_threads(threads)
    typer.echo(f"using {used} CPU thread(s)")
    # in a log, each run is one line when it starts and one with its result: its epochs' bars are for a terminal
    settings = QuickstartSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, alpha=alpha,
                                  teachers=teachers, pooler=pooler, progress=sys.stderr.isatty())
    run_quickstart(out, settings, ProxySize(max_train, max_val, max_test), data, download, echo=typer.echo,
                   processes=used)
    if serve is None:
        serve = sys.stdin.isatty() and sys.stdout.isatty() and typer.confirm(
            "\nIndex the test items with the C2KD student and open the search page now?", default=True)
    if serve:
        serve_quickstart(out, settings, port)
    else:
        typer.echo("  or all in one, the search page of the test items: c2kd quickstart --serve")


def serve_quickstart(out: Path, settings: QuickstartSettings, port: int) -> None:
    """Index the quickstart's test items with its C2KD student and serve the page (until Ctrl-C)."""
    from c2kd.commands.serve import serve
    from c2kd.quickstart import quickstart_index

    index = quickstart_index(out, settings)
    typer.echo(f"indexed the test items in {index}")
    serve(index=index, host="127.0.0.1", port=port, videos=[], features=None, checkpoint=None, option=[],
          old_option=[], cors_origin=[], device="cpu", workers=1, graceful_timeout=30.0)


def structure_command(
    out: Path = typer.Option(Path("runs/structure-proxy"), "--out", "-o", help="Folder for data, caches and runs."),
    data: Path | None = typer.Option(None, "--data", help="Multi30K folder (default: $C2KD_DATA, "
                                                             "../shared/data, or download)."),
    download: bool = typer.Option(True, help="Download Multi30K when it is not found locally."),
    seeds: int = typer.Option(3, min=1, help="Seeds 0..N-1 per method."),
    max_train: int = typer.Option(2000, min=64), max_val: int = typer.Option(500, min=16),
    max_test: int = typer.Option(1000, min=16),
    epochs: int = typer.Option(15, min=1),
    alpha: float = typer.Option(0.2, min=0.0, max=0.99, help="Weight of NCE in C2KD and structure runs."),
    structure: list[str] | None = typer.Option(None, "--structure", metavar="KEY=VALUE",
                                                  help="loss.structure setting, e.g. text_weight=0.5 "
                                                       "(repeatable; see docs/method.md)."),
    threads: int = typer.Option(0, min=0, help="CPU threads (0 = auto)."),
) -> None:
    """Structure distillation (after MCKD) beside C2KD and translate-train on the Multi30K proxy, over seeds:
    mean ± std per language, in OUT/structure.md."""
    from c2kd.options import key_value_pairs
    from c2kd.runtime import set_cpu_threads
    from c2kd.structure_recipe import run_structure_recipe

    used = set_cpu_threads(threads)
    values = {k: float(v) for k, v in key_value_pairs(structure or [], "--structure").items()}
    run_structure_recipe(out, tuple(range(seeds)), QuickstartSettings(epochs=epochs, alpha=alpha),
                         ProxySize(max_train, max_val, max_test), data, download, values, echo=typer.echo,
                         processes=used)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart_command)
    app.command("proxy-structure")(structure_command)
