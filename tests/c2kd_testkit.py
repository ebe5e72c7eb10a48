"""Plain helpers shared by test folders (importable as ``c2kd_testkit``: tests/ is on sys.path)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def tiny_config(dataset: Path, text_model: Path, out_dir: Path, **overrides):
    """A TrainConfig for the tiny dataset; keyword overrides use ``__`` for nesting (loss__alpha=0.5)."""
    from c2kd.train.config import load_config

    items = [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()]
    base = {
        "data": {"path": str(dataset)},
        "model": {"text": {"name": str(text_model), "embed_dim": 32},
                  "video": {"feature_dim": 16, "embed_dim": 32, "dropout": 0.0}},
        "epochs": 2, "batch_size": 16, "optim": {"lr": 1e-3}, "out_dir": str(out_dir),
        "progress": False, "tensorboard": False,
    }
    return load_config(None, items, base=base)


def run_c2kd(*args, cwd: Path | None = None, wrapper: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run ``c2kd ARGS`` in a new Python process (``wrapper`` goes before the interpreter, e.g. an ``unshare``)."""
    command = [*wrapper, sys.executable, "-c", "from c2kd.cli import main; main()", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """The process exited 2 with one ``error:`` line holding every fragment, and no traceback. Returns the line."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
