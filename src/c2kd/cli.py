"""The ``c2kd`` command: the commands of :mod:`c2kd.commands`, and how their errors are reported."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="c2kd",
    help="Multilingual text-video retrieval with Cross-Lingual Cross-Modal Knowledge Distillation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",











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


#: modules of :mod:`c2kd.commands` (each with a ``register(app)`` function), in the order their commands are listed
COMMAND_MODULES = ["quickstart", "train", "evaluate", "languages", "extract", "search", "serve", "data", "reproduce",
                   "model"]
#: the order in which ``c2kd --help`` lists the command groups (after the single commands)
GROUP_ORDER = ["data", "model", "index"]

for _name in COMMAND_MODULES:
    importlib.import_module(f"c2kd.commands.{_name}").register(app)
app.registered_groups.sort(key=lambda group: GROUP_ORDER.index(str(group.name)))


#: the placeholder a value of each type gets in the help (``-k INT``, ``--queries PATH``)
PLACEHOLDERS: dict[Any, str] = {Path: "PATH", int: "INT", float: "NUMBER", str: "TEXT"}


def readable_placeholders(command: Any) -> Any:
    """``command`` (a built click command or group) with readable placeholders in its help, all its commands down.

    Flags (``--help`` too) show no placeholder, not typer's ``<bool>``; an option shows what it takes: ``PATH``,
    ``INT``, ``NUMBER``, ``TEXT`` (a repeatable option the same, then ``...``) unless it declares its own
    ``metavar`` (``--option NAME=VALUE``); an argument shows its name (``INDEX``) and the same word for its type.
    Choices keep their list.
    """
    for sub in getattr(command, "commands", {}).values():
        readable_placeholders(sub)
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
            continue
        described = param.type_descriptor
        element = described.annotation.__args__[0] if described.is_list else described.annotation
        placeholder = None if described.is_choice else PLACEHOLDERS.get(element)
        if param.param_type_name == "argument":
            param.metavar = param.metavar or param.name.upper()
            if placeholder:  # typer writes an argument's type as <path> whatever its metavar
                param.display_type_rich = lambda ctx, shown=placeholder: shown
        elif param.metavar is None and placeholder:
            param.metavar = placeholder + (" ..." if described.is_list else "")
    return command


def command() -> Any:
    """The ``c2kd`` command as it runs: :data:`app` built, with :func:`readable_placeholders`."""
    return readable_placeholders(typer.main.get_command(app))


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
        command()()
    except C2KDError as exc:
        _fail(str(exc))
    except OSError as exc:
        if write_failure(exc) is None or not exc.filename:
            raise
        _fail(str(storage_error(exc.filename, exc)))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise SystemExit(2) from None
