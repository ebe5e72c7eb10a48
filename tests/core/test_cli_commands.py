"""The `c2kd` command's names stay what users type, wherever in the package each command is defined."""

from typer.main import get_command

from c2kd.cli import app

#: every command and sub-command a user can type, in the order `c2kd --help` lists them
EXPECTED = {
    "": ["quickstart", "proxy-structure", "train", "evaluate", "aggregate", "languages", "extract", "search",
         "moments", "serve", "multi30k-proxy", "import-data", "translate", "reproduce", "data", "model", "index"],
    "data": ["synthetic", "check", "concat-features", "subtitles"],
    "model": ["random-text", "download", "import-authors", "aligned", "fuse"],
    "index": ["build", "add", "remove", "info"],
}


def _names(group) -> dict[str, list[str]]:
    out = {"": list(group.commands)}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            out[name] = list(command.commands)
    return out


def test_the_command_names_and_their_order_are_the_expected_ones():
    assert _names(get_command(app)) == EXPECTED


def test_every_command_has_help_text():
    group = get_command(app)
    for name, command in group.commands.items():
        assert command.help or command.short_help, name
