"""The `c2kd` command as a user runs it: data, train, evaluate --json --plot, aggregate, and clean errors."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from c2kd.cli import app


def test_synthetic_train_evaluate_json(tmp_path, tiny_text_models):
    runner = CliRunner()
    data = tmp_path / "data"
    r = runner.invoke(app, ["data", "synthetic", "--out", str(data), "--train", "48", "--val", "8", "--test", "16",
                            "--dim", "16", "--missing-test", "1"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["data", "check", str(data)]).exit_code == 0
    r = runner.invoke(app, ["train", f"data.path={data}", f"model.text.name={tiny_text_models['student']}",
                            "model.text.embed_dim=32", "model.video.feature_dim=16", "model.video.embed_dim=32",
                            "epochs=1", "batch_size=16", f"out_dir={tmp_path / 'run'}", "progress=false"])
    assert r.exit_code == 0, r.output
    for seed in (0, 1):
        out = tmp_path / f"res{seed}.json"
        r = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", str(data), "--split",
                                "test", "--json", str(out), "--languages", "en,cz", "--plot", str(out) + ".png"])
        assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    with Image.open(str(out) + ".png") as image:  # R@1 per language, t2v above v2t, one model
        assert image.format == "PNG" and image.width >= 600 and image.height > image.width
    assert set(res["t2v"]) == {"en", "cs", "average"} and set(res["v2t"]) == {"en", "cs", "average"}
    for direction in ("t2v", "v2t"):
        for metrics in res[direction].values():
            assert set(metrics) == {"R@1", "R@5", "R@10", "MedR", "MeanR"}
            assert 0 <= metrics["R@1"] <= metrics["R@5"] <= metrics["R@10"] <= 100
    # the original's protocol: MedR/MeanR over the present queries (one test video has no features), same R@K
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", str(data), "--split",
                            "test", "--json", str(tmp_path / "present.json"), "--languages", "en",
                            "--missing-ranks", "present"])
    assert r.exit_code == 0, r.output
    present = json.loads((tmp_path / "present.json").read_text())
    assert present["protocol"]["missing_ranks"] == "present" and res["protocol"]["missing_ranks"] == "gallery"
    for metric in ("R@1", "R@5", "R@10"):
        assert present["t2v"]["en"][metric] == res["t2v"]["en"][metric]
    assert present["t2v"]["en"]["MeanR"] < res["t2v"]["en"]["MeanR"]  # the missing query no longer ranks last
    r = runner.invoke(app, ["aggregate", str(tmp_path / "res0.json"), str(tmp_path / "res1.json"),
                            "--json", str(tmp_path / "agg.json"), "--plot", str(tmp_path / "agg.png")])
    assert r.exit_code == 0, r.output
    assert f"wrote {tmp_path / 'agg.png'}" in r.output
    with Image.open(tmp_path / "agg.png") as image:
        assert image.format == "PNG" and image.width >= 600
    agg = json.loads((tmp_path / "agg.json").read_text())
    assert agg["t2v"]["en"]["R@1"]["std"] == 0 and agg["t2v"]["en"]["R@1"]["n"] == 2


def test_errors_are_one_clean_line(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "from c2kd.cli import main; main()", "evaluate", "--checkpoint",
                           str(tmp_path), "--data", str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "error: no checkpoint in" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unknown_evaluation_protocol_is_one_clean_line(tmp_path):
    for option, value in (("--missing-ranks", "dropped"), ("--tie-policy", "random")):
        proc = subprocess.run([sys.executable, "-c", "from c2kd.cli import main; main()", "evaluate", "--checkpoint",
                               str(tmp_path), "--data", str(tmp_path), option, value], capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 2
        assert f"error: {option} {value!r} is not one of" in proc.stderr and "Traceback" not in proc.stderr




def test_version():
    from importlib.metadata import version

    from c2kd_testkit import run_c2kd

    proc = run_c2kd("--version")
    assert proc.returncode == 0 and proc.stdout == f"c2kd {version('c2kd')}\n", proc.stderr


@pytest.mark.parametrize("words,cword,expected", [("c2kd ind", 1, ["index"]),
                                                   ("c2kd index build --mom", 3, ["--moment-lengths", "--moment-stride"]),
                                                   ("c2kd --no-pro", 1, ["--no-progress"])])
def test_shell_completion_of_commands_and_options(words, cword, expected):
    """What bash asks of the installed command (``c2kd --install-completion`` sets it up) for a partial word."""
    command = Path(sys.executable).with_name("c2kd")
    env = {**os.environ, "_C2KD_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    proc = subprocess.run([str(command)], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.split() == expected, proc.stdout + proc.stderr


def test_listing_the_commands_does_not_import_torch():
    """`c2kd --help` and `c2kd CMD --help` start without torch (2-4 s of imports), numpy, pydantic, pyarrow or
    a web client: commands import them inside."""
    heavy = ("torch", "transformers", "faiss", "matplotlib", "onnxruntime", "pydantic", "pyarrow", "yaml",
             "urllib.request", "numpy")
    code = f"import sys\nfrom c2kd.cli import app\nprint(','.join(m for m in {heavy!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "", f"imported at start: {proc.stdout.strip()}"


def test_help_shows_readable_placeholders():
    """No typer type names (`<bool>`, `<list[str]>`) in any command's help: flags show none, options what they
    take, arguments their name, and KEY=VALUE options say so."""
    from c2kd.cli import command

    def leaves(cmd, path=()):
        subs = getattr(cmd, "commands", {})
        yield path, cmd
        for name, sub in subs.items():
            yield from leaves(sub, (*path, name))

    import typer

    for path, cmd in leaves(command()):
        ctx = typer.Context(cmd)
        for param in cmd.get_params(ctx):
            shown = f"{param.metavar or ''} {param.display_type_rich(ctx) or ''}"
            assert "<" not in shown and "[" not in shown, (path, param.name, shown)
    env = {**os.environ, "COLUMNS": "160"}
    out = subprocess.run([sys.executable, "-m", "c2kd", "search", "--help"], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert "{INDEX} [QUERY]" in out and "<" not in out.replace("{INDEX}", "")
    assert re.search(r"-O\s+NAME=VALUE", out) and re.search(r"-f\s+FIELD=VALUE", out) and re.search(r"-k\s+INT", out)
    assert all("<bool>" not in line for line in out.splitlines())


def _help(*command: str) -> str:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "c2kd", *command, "--help"], capture_output=True, text=True,
                          check=True, env=env).stdout


def test_help_shows_brackets_reflows_paragraphs_and_lists_quickstart_first():
    """Issue 36: rich markup swallowed `[ray]`; a docstring's line breaks broke sentences in two; `quickstart`
    was listed 9th."""
    def flat(text: str) -> str:
        return " ".join(text.replace("│", " ").split())

    assert "pip install 'c2kd[ray]'" in flat(_help("extract"))
    assert "pip install 'c2kd[ray]'" in flat(_help("train"))
    fuse = _help("model", "fuse")
    assert "--checkpoint FUSED makes them" in fuse, fuse  # one paragraph, reflowed to the terminal's width
    commands = [line.split()[1] for line in _help().splitlines() if re.match(r"│ [a-z]", line)]
    assert commands[0] == "quickstart", commands
    assert "import" not in _help("data").split("│")[0].split("(")[0]  # `data` no longer says it imports
