"""One writer per index: a build in progress refuses other builds, `index add` and `index remove` (real processes);
a lock left by a killed build is taken over, and a damaged staging folder is thrown away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from c2kd.data.features import FeatureStore
from c2kd.errors import BusyError
from c2kd.index import VideoIndex
from c2kd.locking import exclusive_lock, lock_file_beside

REPO = Path(__file__).resolve().parents[2]


def _c2kd(*args: object) -> list[str]:
    return [sys.executable, "-c", "from c2kd.cli import main; main()", *map(str, args)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}


def _build_args(checkpoint: Path, features: Path, out: Path) -> list[object]:
    return ["index", "build", "--checkpoint", checkpoint, "--features", features, "--out", out]


def _start_holding_lock(args: list[object], lock: Path) -> subprocess.Popen:
    """Start ``c2kd ARGS`` and return once it holds ``lock`` (its pid is in the file)."""
    proc = subprocess.Popen(_c2kd(*args), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if f'"pid": {proc.pid}' in lock.read_text():
                return proc
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    out, err = proc.communicate(timeout=300)
    pytest.fail(f"`c2kd {' '.join(map(str, args))}` never held {lock} (exit {proc.returncode}):\n{out}\n{err}")


def test_writers_are_refused_while_a_build_runs(tmp_path, random_checkpoint, synthetic_data):
    from c2kd.search.building import build_index

    out = tmp_path / "idx"
    ids = FeatureStore(synthetic_data / "features").ids
    build_index(random_checkpoint, synthetic_data, out, ids=ids[:50], progress=False)
    build = _build_args(random_checkpoint, synthetic_data, out)
    first = _start_holding_lock(build, lock_file_beside(out))
    os.kill(first.pid, signal.SIGSTOP)  # hold it in the middle of its build while the others try
    assert first.poll() is None, "the build ended before it could be held"
    try:
        for args in (build, ["index", "add", out, "--id", ids[60]], ["index", "remove", out, ids[0]]):
            other = subprocess.run(_c2kd(*args), env=_env(), capture_output=True, text=True, timeout=300, check=False)
            assert other.returncode == 2, other.stdout + other.stderr
            assert f"a build of this index is in progress, pid {first.pid}" in other.stderr
            assert "Traceback" not in other.stderr
    finally:
        os.kill(first.pid, signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stdout + stderr
    with VideoIndex.open(out) as index:
        assert sorted(index.ids) == sorted(ids)   # the first build is whole; nothing was added or removed
    assert not lock_file_beside(out).exists()


def test_the_lock_of_a_killed_build_is_taken_over(tmp_path, random_checkpoint, synthetic_data):
    from c2kd.search.building import build_index

    out = tmp_path / "idx"
    lock = lock_file_beside(out)
    killed = _start_holding_lock(_build_args(random_checkpoint, synthetic_data, out), lock)
    assert killed.poll() is None, "the build ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, f"the build ended ({killed.returncode}) before it could be killed"
    assert lock.exists()                       # left behind by the dead process
    build_index(random_checkpoint, synthetic_data, out, progress=False)
    with VideoIndex.open(out) as index:
        assert sorted(index.ids) == sorted(FeatureStore(synthetic_data / "features").ids)
    assert not lock.exists()


def test_a_damaged_staging_folder_is_thrown_away(tmp_path, random_checkpoint, synthetic_data):
    """Staging as two racing builds left it: its manifest lists a segment whose files are gone."""
    from c2kd.formats import checkpoint_fingerprint
    from c2kd.search.building import build_index

    out = tmp_path / "idx"
    staging = out.with_name(f".{out.name}.building")
    info = {"checkpoint_fingerprint": checkpoint_fingerprint(random_checkpoint.resolve())}  # same weights: resumable
    staged = VideoIndex.create(staging, dim=32, info=info)
    ids = FeatureStore(synthetic_data / "features").ids
    staged.add(ids[:5], np.random.default_rng(0).normal(size=(5, 32)))
    staged.close()
    next(staging.glob("segments/seg-*.npy")).unlink()

    for _ in range(2):  # and again: the index is rebuilt whole each time
        build_index(random_checkpoint, synthetic_data, out, progress=False)
        with VideoIndex.open(out) as index:
            assert sorted(index.ids) == sorted(ids)
        assert not staging.exists()


def test_the_lock_names_its_holder_and_is_not_reentrant(tmp_path):
    lock = tmp_path / ".x.lock"
    held = exclusive_lock(lock, "a build of this index", subject=tmp_path / "x")
    second = exclusive_lock(lock, "an update of this index")
    with held, pytest.raises(BusyError, match=f"a build of this index is in progress, pid {os.getpid()}"), second:
        pass
    with exclusive_lock(lock, "an update of this index"):  # free again
        assert lock.exists()
    assert not lock.exists()


def test_a_valid_staging_folder_is_resumed(tmp_path, random_checkpoint, synthetic_data):
    """Staging as an interrupted build of the same weights and windows left it: the videos it holds are kept
    as they are (not embedded again), the others are added, and the finished index holds them all."""
    from c2kd.formats import checkpoint_fingerprint
    from c2kd.search.building import build_index
    from c2kd.search.windows import Windows

    out = tmp_path / "idx"
    staging = out.with_name(f".{out.name}.building")
    info = {"checkpoint_fingerprint": checkpoint_fingerprint(random_checkpoint.resolve()),
            "moments": Windows().to_dict()}
    staged = VideoIndex.create(staging, dim=32, info=info)
    ids = FeatureStore(synthetic_data / "features").ids
    planted = np.random.default_rng(0).normal(size=(5, 32)).astype(np.float32)  # no video tower gives these
    staged.add(ids[:5], planted)
    staged.close()

    build_index(random_checkpoint, synthetic_data, out, progress=False)
    assert not staging.exists()
    with VideoIndex.open(out) as index:
        assert sorted(index.ids) == sorted(ids)
        for vid, vector in zip(ids[:5], planted):
            np.testing.assert_allclose(index.vector(vid), vector / np.linalg.norm(vector), atol=1e-6)
        assert index.info["checkpoint_fingerprint"] == info["checkpoint_fingerprint"]
