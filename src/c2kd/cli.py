"""The ``c2kd`` command. Each area registers its commands from its own module (heavy imports inside commands)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="c2kd",
    help="Multilingual text-video retrieval with Cross-Lingual Cross-Modal Knowledge Distillation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"c2kd {version('c2kd')}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print the version and exit."),
             progress: bool = typer.Option(True, "--progress/--no-progress",
                                           help="Progress bars on a terminal, progress lines in a log; "
                                                "--no-progress: neither, for any command")) -> None:
    """Multilingual text-video retrieval with Cross-Lingual Cross-Modal Knowledge Distillation."""
    from c2kd.progress import show_progress

    show_progress(progress)


#: modules with a ``register(app: typer.Typer) -> None`` function, in the order their commands are listed
COMMAND_MODULES = [
    "c2kd.train.cli",          # train
    "c2kd.evaluation.cli",     # evaluate, aggregate
    "c2kd.cli",                # languages
    "c2kd.features.cli",       # extract
    "c2kd.search.cli",         # search, moments; the index group
    "c2kd.serve.cli",          # serve
    "c2kd.quickstart",         # quickstart
    "c2kd.data.cli",           # multi30k-proxy, import-data, translate; the data group
    "c2kd.reproduce.cli",      # reproduce
    "c2kd.encoders.cli",       # the model group
]
#: the order in which ``c2kd --help`` lists the command groups (after the single commands)
GROUP_ORDER = ["data", "model", "index"]


def languages_command() -> None:
    """List the language codes c2kd knows (queries in any of them are accepted)."""
    from c2kd.languages import ALIASES, LANGUAGES

    for code, name in LANGUAGES.items():
        aliases = [a for a, c in ALIASES.items() if c == code]
        typer.echo(f"{code:4s} {name}" + (f"  (also: {', '.join(aliases)})" if aliases else ""))


def register(app: typer.Typer) -> None:
    """Add ``languages`` (the codes of :mod:`c2kd.languages`) to the ``c2kd`` command."""
    app.command("languages")(languages_command)


for _name in COMMAND_MODULES:
    # this module's own commands are registered by the function above (it is still being imported)
    (register if _name == "c2kd.cli" else importlib.import_module(_name).register)(app)
app.registered_groups.sort(key=lambda group: GROUP_ORDER.index(str(group.name)))


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
