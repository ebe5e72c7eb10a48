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
    """Entry point: known errors print their message (no traceback) and exit with status 2.

    Known errors are c2kd's own (:class:`~c2kd.errors.C2KDError`) and failed writes the system reports with
    the path at fault (disk full, read-only or forbidden folder), wherever in a command they happen.
    """
    import threading

    from c2kd.errors import C2KDError
    from c2kd.io import storage_error, write_failure

    default_hook = threading.excepthook

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        # a writer thread (tensorboard's) hands its failed write to the main thread, which reports it in one line
        if args.exc_value is None or write_failure(args.exc_value) is None:
            default_hook(args)

    threading.excepthook = thread_hook
    try:
        app()
    except C2KDError as exc:
        _fail(str(exc))
    except OSError as exc:
        if write_failure(exc) is None or not exc.filename:
            raise
        _fail(str(storage_error(exc.filename, exc)))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise SystemExit(2) from None
