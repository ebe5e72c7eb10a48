"""``c2kd extract --engine ray`` on a real local Ray cluster: the store equals the single-process one, reruns skip
what is stored, a run killed half-way resumes, and errors raised in actors reach the user as themselves."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from c2kd.data.features import FeatureStore
from c2kd.errors import BusyError, ConfigError
from c2kd.features.extract import ExtractConfig, extract_videos, load_failures
from c2kd.features.ray_engine import RayEngine, extract_on_ray, plan_units
from c2kd.locking import exclusive_lock

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory, clips) -> Path:
    """The two real MSR-VTT clips and a broken file."""
    root = tmp_path_factory.mktemp("ray_corpus") / "videos"
    root.mkdir()
    for path in clips.values():
        shutil.copy(path, root / path.name)
    (root / "broken.mp4").write_bytes(np.random.default_rng(2).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return root


def _clip_options(tiny_clip: Path) -> dict[str, str]:
    return {"model": str(tiny_clip), "device": "cpu"}


def assert_same_store(got: Path, reference: Path) -> None:
    """Same ids, same timestamps, same features up to float16 rounding (each store is float16)."""
    a, b = FeatureStore(got), FeatureStore(reference)
    assert sorted(a.ids) == sorted(b.ids)
    assert a.dim == b.dim and a.meta["encoder"] == b.meta["encoder"] and a.meta["fps"] == b.meta["fps"]
    for vid in b.ids:
        np.testing.assert_array_equal(a.times(vid), b.times(vid), err_msg=vid)
        np.testing.assert_allclose(a[vid].astype(np.float32), b[vid].astype(np.float32), rtol=2e-3, atol=2e-3,
                                   err_msg=vid)


def test_ray_store_equals_the_single_process_store_and_a_rerun_skips_it(tmp_path, real_corpus, clip_encoder,
                                                                         tiny_clip, ray_cluster):
    reference = tmp_path / "reference"
    extract_videos([real_corpus], clip_encoder, reference, ExtractConfig(progress=False, workers=0))
    out = tmp_path / "ray"
    engine = RayEngine(concurrency=2, tasks=3)
    config = ExtractConfig(progress=False, workers=0, batch_size=8)
    report = extract_on_ray([real_corpus], out, clip_encoder, "clip-vit-b32", _clip_options(tiny_clip), config,
                            engine)
    assert (report.done, report.frames, report.already_done) == (2, 25, 0)
    assert [Path(p).name for p, _ in report.failed] == ["broken.mp4"]
    assert_same_store(out, reference)
    assert load_failures(out).keys() == {"broken"}
    units = {p.name.split("-")[0] for p in (out / "shards").glob("*.index.parquet")}
    assert units <= {f"s{i:04d}of0003" for i in range(3)}  # one writer prefix per unit, as --shard i/3 writes

    again = extract_on_ray([real_corpus], out, clip_encoder, "clip-vit-b32", _clip_options(tiny_clip), config,
                           engine)
    assert (again.done, again.already_done, again.skipped_failed, again.failed) == (0, 2, 1, [])
    # a local run resumes a Ray store too: the rules are the same
    assert extract_videos([real_corpus], clip_encoder, out, ExtractConfig(progress=False, workers=0)).done == 0


def test_units_are_the_shards_of_the_local_engine():
    from c2kd.features.jobs import VideoJob, select_shard

    jobs = [VideoJob(f"/v/{i}.mp4", f"v{i}") for i in range(20)]
    units = plan_units(jobs, 4)
    import json

    for unit in units:
        ids = [vid for _, vid in json.loads(unit["jobs"])]
        assert ids == [j.video_id for j in select_shard(jobs, unit["index"], 4)]
    assert sum(len(json.loads(u["jobs"])) for u in units) == 20


def test_settings_and_shards_are_refused_before_anything_runs(tmp_path, real_corpus, clip_encoder, tiny_clip):
    out = tmp_path / "store"
    extract_videos([real_corpus / "video9770.mp4"], clip_encoder, out, ExtractConfig(progress=False, workers=0))
    with pytest.raises(ConfigError, match="--fps"):
        extract_on_ray([real_corpus], out, clip_encoder, "clip-vit-b32", _clip_options(tiny_clip),
                       ExtractConfig(fps=2.0, progress=False))
    with pytest.raises(ConfigError, match="drop --shard"):
        extract_on_ray([real_corpus], out, clip_encoder, "clip-vit-b32", _clip_options(tiny_clip),
                       ExtractConfig(shard=(0, 2), progress=False))


def test_an_error_raised_in_an_actor_reaches_the_caller_as_itself(tmp_path, real_corpus, clip_encoder, tiny_clip,
                                                                  ray_cluster):
    out = tmp_path / "store"
    # one unit is shard 0/1, whose writer prefix is a local run's ("part"): the same lock
    with exclusive_lock(out / ".part.lock", "a test holding the only unit"), \
            pytest.raises(BusyError, match=f"a test holding the only unit is in progress, pid {os.getpid()}"):
        extract_on_ray([real_corpus], out, clip_encoder, "clip-vit-b32", _clip_options(tiny_clip),
                       ExtractConfig(progress=False, workers=0), RayEngine(tasks=1))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    return env


def _wait_for_exit(pids: set[int], timeout: float) -> set[int]:
    """The pids still alive after waiting up to ``timeout`` seconds for them to end."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive.discard(pid)
        time.sleep(0.05)
    return alive


def _lock_holders(out: Path) -> set[int]:
    import json

    pids = set()
    for lock in out.glob(".s*.lock"):
        try:
            pids.add(int(json.loads(lock.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            continue
    return pids


def test_a_ray_run_killed_half_way_resumes(tmp_path, clips, clip_encoder, tiny_clip, ray_cluster):
    """A ``c2kd extract --engine ray`` driver on the session's cluster, killed (-9) once its first store shard
    is in; the same command again extracts only the rest, and the store equals the single-process one."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(8):
        for path in clips.values():
            shutil.copy(path, videos / f"{path.stem}-{k}.mp4")
    (videos / "broken.mp4").write_bytes(b"\0" * 3000)
    reference = tmp_path / "reference"
    extract_videos([videos], clip_encoder, reference, ExtractConfig(progress=False, workers=0))
    out = tmp_path / "ray"
    args = [sys.executable, "-m", "c2kd", "extract", str(videos), "--out", str(out), "--encoder", "clip-vit-b32",
            "--model", str(tiny_clip), "--device", "cpu", "--workers", "0", "--batch-size", "4",
            "--flush-seconds", "0", "--no-progress", "--engine", "ray", "--address", ray_cluster,
            "--concurrency", "2", "--tasks", "4"]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    holders: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        holders |= _lock_holders(out)
        if list((out / "shards").glob("*.index.parquet")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    output = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{output}"
    holders |= _lock_holders(out)
    # Ray ends the actors of a dead driver; their shard locks are free once they are gone
    assert not _wait_for_exit(holders, 60), "the killed driver's actors outlived it"
    done_before = len(FeatureStore(out))
    assert 1 <= done_before < 16

    rerun = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    summary = re.search(r"(\d+) extracted .*, (\d+) already done", rerun.stdout)
    assert summary, rerun.stdout
    assert (int(summary[1]), int(summary[2])) == (16 - done_before, done_before), rerun.stdout
    assert_same_store(out, reference)
