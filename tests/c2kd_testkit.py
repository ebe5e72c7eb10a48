"""Plain helpers shared by test folders (importable as ``c2kd_testkit``: pyproject puts tests/ on sys.path)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest


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


def _unshare(*flags: str) -> list[str]:
    """``unshare FLAGS``; a user that is not root also maps itself to root in a new user namespace to mount."""
    if os.geteuid() == 0 or "--mount" not in flags:
        return ["unshare", *flags]
    return ["unshare", "--user", "--map-root-user", *flags]


def own_tmpfs(folder: Path, options: str) -> list[str]:
    """A `run_c2kd` wrapper: the command runs in its own mount namespace where ``folder`` is a new tmpfs mounted
    with ``options`` ("ro": a read-only file system; "size=64k": a disk that fills up). Nothing outside changes."""
    folder.mkdir(parents=True, exist_ok=True)
    script = 'mount -t tmpfs -o "$1" tmpfs "$2" && shift 2 && exec "$@"'
    return [*_unshare("--mount"), "sh", "-c", script, "sh", options, str(folder)]


def without_write_permission(folder: Path) -> list[str]:
    """A `run_c2kd` wrapper under which ``folder`` is not writable (EACCES), and makes it so.

    ``folder`` gets mode 0o555. Root ignores modes, so a root user runs the command in a new user namespace
    without an id mapping, where the kernel grants no override of file modes: the 0o555 holds, while folders
    whose owner may write (the test's own tmp_path) stay writable.
    """
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    return _unshare("--user") if os.geteuid() == 0 else []


@functools.cache
def namespaces_unavailable() -> str | None:
    """Why `own_tmpfs` / `without_write_permission` cannot run here, or None when they can."""
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        for wrapper in (own_tmpfs(Path(tmp) / "disk", "size=4k"), _unshare("--user")):
            proc = subprocess.run([*wrapper, "true"], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                return f"{' '.join(wrapper[:3])} is not permitted here: {proc.stderr.strip()}"
    return None


#: marks a test that needs `own_tmpfs` or `without_write_permission`
needs_namespaces = pytest.mark.skipif(namespaces_unavailable() is not None, reason=str(namespaces_unavailable()))


OWN_DIM = 32  # the random text models' size: an aligned model's own frames live in its text space


def aligned_teacher(out: Path, text_model: Path, data: Path, encoder: str = "other-frames") -> Path:
    """A training-free aligned checkpoint (random text model) whose frame encoder is ``encoder``, ``OWN_DIM``-d."""
    import torch

    from c2kd.checkpoint import save_checkpoint
    from c2kd.encoders.frames import FrameEncoderSpec
    from c2kd.model import build_model
    from c2kd.train.config import TrainConfig
    from c2kd.zeroshot import aligned_model_config

    config = aligned_model_config(str(text_model), FrameEncoderSpec(name=encoder, dim=OWN_DIM), OWN_DIM)
    torch.manual_seed(0)
    model = build_model(config)
    return save_checkpoint(out, model.eval(), TrainConfig(stage="zero-shot", data={"path": str(data)},
                                                          model=config, out_dir=str(out)))


def put_in_hub_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """Lay ``folder`` out as the cached snapshot of ``repo_id`` (what a download would leave in a Hugging Face
    cache), so hub-loading code runs offline on a tiny local model."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    shutil.copytree(folder, repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567")
