"""``c2kd languages``: the language codes of :mod:`c2kd.languages`."""

from __future__ import annotations

import typer


def languages_command() -> None:
    """List the language codes c2kd knows (queries in any of them are accepted)."""
    from c2kd.languages import ALIASES, LANGUAGES

    for code, name in LANGUAGES.items():
        aliases = [a for a, c in ALIASES.items() if c == code]
        typer.echo(f"{code:4s} {name}" + (f"  (also: {', '.join(aliases)})" if aliases else ""))


def register(app: typer.Typer) -> None:
    app.command("languages")(languages_command)
