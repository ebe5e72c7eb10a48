"""User errors end in one line naming the file or value and the fix, with exit status 2, never a traceback.

Each case runs the real `c2kd` command in a new process. A read-only folder is a real read-only file system (a
tmpfs mounted ``ro`` in the command's own mount namespace) or a folder of mode 0o555 (see
``c2kd_testkit.without_write_permission`` for root); a full disk is a real small tmpfs that fills up.
"""

import pytest

from c2kd.train.run import train
from c2kd_testkit import (
    assert_one_line_error,
    needs_namespaces,
    own_tmpfs,
    run_c2kd,
    tiny_config,
    without_write_permission,
)


def train_args(dataset, text_model, out_dir, *extra) -> list:
    return ["train", f"data.path={dataset}", f"model.text.name={text_model}", "model.text.embed_dim=32",
            "model.video.feature_dim=16", "model.video.embed_dim=32", "batch_size=16", "epochs=1",
            "progress=false", f"out_dir={out_dir}", *extra]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_dataset, tiny_text_models):
    out = tmp_path_factory.mktemp("clean-errors") / "run"
    return train(tiny_config(tiny_dataset, tiny_text_models["student"], out, epochs=1))


def unwritable(kind: str, folder):
    """The wrapper under which ``folder`` cannot be written, and the words the error line must hold."""
    if kind == "read-only":
        return own_tmpfs(folder, "ro"), "Read-only file system"
    return without_write_permission(folder), "Permission denied"


@needs_namespaces
@pytest.mark.parametrize("kind", ["read-only", "no-permission"])
def test_unwritable_output_folders(kind, tmp_path, tiny_dataset, tiny_text_models, run_folder):
    folder = tmp_path / "out"
    wrapper, words = unwritable(kind, folder)
    cases = {
        folder / "data": ["data", "synthetic", "--out", folder / "data", "--train", "8", "--val", "4", "--test",
                          "4", "--dim", "8"],
        folder / "res.json": ["evaluate", "--checkpoint", run_folder, "--data", tiny_dataset, "--json",
                              folder / "res.json"],
        folder / "run": train_args(tiny_dataset, tiny_text_models["student"], folder / "run"),
    }
    if kind == "no-permission":  # the same code path as read-only; one command shows the message
        cases = dict(list(cases.items())[:1])
    for path, args in cases.items():
        proc = run_c2kd(*args, wrapper=wrapper)
        assert_one_line_error(proc, f"cannot write {path}:", words)


@needs_namespaces
def test_a_full_disk_while_training(tmp_path, tiny_dataset, tiny_text_models):
    disk = tmp_path / "disk"
    proc = run_c2kd(*train_args(tiny_dataset, tiny_text_models["student"], disk / "run"),
                    wrapper=own_tmpfs(disk, "size=64k"))  # room for the run's small files, not its weights
    assert_one_line_error(proc, f"cannot write {disk / 'run'}", "No space left on device", "Free disk space")


def test_malformed_yaml_and_overrides(tmp_path, tiny_dataset, tiny_text_models):
    config = tmp_path / "bad.yaml"
    config.write_text("epochs: [1\nbatch_size: 4\n")
    assert_one_line_error(run_c2kd("train", "--config", config), f"config file {config} is not valid YAML",
                          "line 2")
    base = train_args(tiny_dataset, tiny_text_models["student"], tmp_path / "run")
    assert_one_line_error(run_c2kd(*base, "optim.lr=[1"), "override 'optim.lr=[1'", "not valid YAML")
    assert_one_line_error(run_c2kd(*base, "=3"), "override '=3' must look like key.path=value")


def test_a_loss_that_becomes_nan(tmp_path, tiny_dataset, tiny_text_models):
    proc = run_c2kd(*train_args(tiny_dataset, tiny_text_models["student"], tmp_path / "run", "optim.lr=1e30",
                                "tensorboard=false"))
    assert_one_line_error(proc, "loss became nan", "lower the learning rate")


def test_savers_report_the_real_cause_of_a_failed_write(tmp_path):
    """torch.save and .npy files written past a file size limit fail with EFBIG itself (an errno), not a byte
    count or "unexpected pos" that would have to be guessed from the free space."""
    import subprocess
    import sys

    code = (
        "import errno, resource, signal, sys, numpy as np, torch\n"
        "from c2kd.errors import StorageError\n"
        "from c2kd.io import save_npy, save_torch, write_failure\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))\n"
        "try:\n"
        "    save_torch(sys.argv[1] + '/state.pt', {'w': torch.zeros(1 << 16)})\n"
        "except OSError as exc:\n"
        "    assert exc.errno == errno.EFBIG and write_failure(exc) == errno.EFBIG, exc\n"
        "else:\n"
        "    raise SystemExit('torch.save did not fail')\n"
        "try:\n"
        "    save_npy(sys.argv[1] + '/rows.npy', np.zeros((1 << 15, 4), np.float32))\n"
        "except StorageError as exc:\n"
        "    assert 'File too large' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('save_npy did not fail')\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
