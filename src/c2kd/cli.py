"""The ``c2kd`` command. Each area registers its commands from its own module (heavy imports inside commands)."""

from __future__ import annotations

import importlib
import importlib.util

import typer

app = typer.Typer(
    name="c2kd",
    help="Multilingual text-video retrieval with Cross-Lingual Cross-Modal Knowledge Distillation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: modules with a ``register(app: typer.Typer) -> None`` function, in the order their commands are listed
COMMAND_MODULES = [
    "c2kd.commands",           # train, evaluate, data, languages, model
    "c2kd.features.cli",       # extract
    "c2kd.search.cli",         # index, search, moments, serve
    "c2kd.quickstart",         # quickstart
    "c2kd.reproduce.cli",      # reproduce, translate, data import
]

for _name in COMMAND_MODULES:
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name).register(app)


def main() -> None:
    """Entry point: known errors print their message (no traceback) and exit with status 2."""
    from c2kd.errors import C2KDError

    try:
        app()
    except C2KDError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
