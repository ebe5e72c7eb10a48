"""`c2kd translate`: the command line translates, prints the coverage table and rejects bad options."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from c2kd.cli import app
from c2kd.data.dataset import VideoTextDataset
from c2kd.errors import ConfigError


def test_translate_command(dataset: Path, marian_models: str) -> None:
    args = ["translate", "--dataset", str(dataset), "--to", "de,es", "--model", marian_models,
            "--batch-size", "3", "--chunk-size", "4", "--max-new-tokens", "6", "--splits", "train",
            "--threads", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| de | 10 | 9 | 1 | 0 |" in result.output and "| es | 10 | 9 | 1 | 0 |" in result.output
    ds = VideoTextDataset(dataset)
    assert ds.languages == ["en", "de", "es", "ja"]
    assert ds.split("train", ["en", "de", "es"], training=True).languages == ["en", "de", "es"]


def test_bad_code_option(dataset: Path, marian_models: str) -> None:
    result = CliRunner().invoke(
        app, ["translate", "--dataset", str(dataset), "--to", "de", "--model", marian_models, "--code", "sw"]
    )
    assert isinstance(result.exception, ConfigError) and "KEY=VALUE" in str(result.exception)
