"""End-to-end extraction: real clips and generated videos into a feature store, failures, resume, shards,
parallel decoding, a killed run, a torchrun launch and the CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from videokit import colour, onnx_cli_args, write_colour_seconds

from c2kd.data.features import FeatureStore
from c2kd.errors import ConfigError
from c2kd.features.decode import sample_frames
from c2kd.features.extract import ExtractConfig, extract_videos, load_failures
from c2kd_testkit import assert_one_line_error, needs_namespaces, own_tmpfs, run_c2kd

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, clips) -> Path:
    """The two real clips, three generated colour videos (one in a subfolder) and three broken files."""
    root = tmp_path_factory.mktemp("corpus") / "videos"
    (root / "sub").mkdir(parents=True)
    for path in clips.values():
        shutil.copy(path, root / path.name)
    write_colour_seconds(root / "gen3.mp4", seconds=3)
    write_colour_seconds(root / "gen5.mp4", seconds=5, size=(80, 60))
    write_colour_seconds(root / "sub" / "gen4.mkv", seconds=4)
    (root / "empty.mp4").write_bytes(b"")
    (root / "noise.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (root / "cut.mp4").write_bytes(clips["video9771"].read_bytes()[:150_000])
    return root


GOOD = {"video9770": 11, "video9771": 14, "gen3": 3, "gen5": 5, "gen4": 4}
BAD = {"empty", "noise", "cut"}


def _run(corpus, encoder, out, **kw):
    return extract_videos([corpus], encoder, out, ExtractConfig(progress=False, **kw))


def test_extracts_per_second_features_with_timestamps_and_reports_broken_files(tmp_path, corpus, clip_encoder):
    out = tmp_path / "store"
    report = _run(corpus, clip_encoder, out, workers=0)
    assert report.done == len(GOOD) and report.frames == sum(GOOD.values())
    assert sorted(Path(p).stem for p, _ in report.failed) == sorted(BAD)
    store = FeatureStore(out)
    assert {vid: len(store[vid]) for vid in store.ids} == GOOD
    assert store.dim == 16 and store.meta["encoder"] == "clip-vit-b32" and store.meta["fps"] == 1.0
    # the stored features are the encoder's output on the sampled frames (float16 in the store)
    frames, times = sample_frames(corpus / "video9770.mp4")
    np.testing.assert_allclose(store["video9770"].astype(np.float32), clip_encoder.encode(frames), atol=2e-2)
    np.testing.assert_array_equal(store.times("video9770"), times)
    np.testing.assert_allclose(store.times("gen5"), np.arange(5), atol=1e-6)
    # the manifest names every broken file with a reason
    manifest = json.loads(Path(report.manifest).read_text())
    assert set(manifest["failed"]) == BAD
    assert manifest["failed"]["empty"]["reason"].startswith("empty file")
    assert manifest["failed"]["noise"]["path"] == str(corpus / "noise.mp4")
    assert load_failures(out).keys() == BAD


def test_rerun_does_nothing_twice_and_retries_failures_only_when_asked(tmp_path, corpus, clip_encoder):
    out = tmp_path / "store"
    _run(corpus, clip_encoder, out, workers=0)
    shards = sorted((out / "shards").glob("*.index.parquet"))
    again = _run(corpus, clip_encoder, out, workers=0)
    assert (again.done, again.already_done, again.skipped_failed, again.failed) == (0, len(GOOD), len(BAD), [])
    assert sorted((out / "shards").glob("*.index.parquet")) == shards     # nothing written
    retried = _run(corpus, clip_encoder, out, workers=0, retry_failed=True)
    assert retried.done == 0 and len(retried.failed) == len(BAD)
    # a failed file that was replaced by a good one is retried without being asked
    shutil.copy(corpus / "gen3.mp4", tmp_path / "empty.mp4")
    fixed = extract_videos([tmp_path / "empty.mp4"], clip_encoder, out, ExtractConfig(progress=False, workers=0))
    assert fixed.done == 1 and "empty" in FeatureStore(out)
    assert "empty" not in load_failures(out)


def test_parallel_decoding_gives_the_same_store(tmp_path, corpus, clip_encoder):
    _run(corpus, clip_encoder, tmp_path / "inline", workers=0)
    report = _run(corpus, clip_encoder, tmp_path / "parallel", workers=2, batch_size=8)
    assert report.done == len(GOOD) and len(report.failed) == len(BAD)
    a, b = FeatureStore(tmp_path / "inline"), FeatureStore(tmp_path / "parallel")
    assert sorted(a.ids) == sorted(b.ids)
    for vid in a.ids:
        np.testing.assert_array_equal(a[vid], b[vid])
        np.testing.assert_array_equal(a.times(vid), b.times(vid))


def test_shards_split_the_corpus_into_one_store(tmp_path, corpus, clip_encoder):
    out = tmp_path / "store"
    reports = [_run(corpus, clip_encoder, out, workers=0, shard=(i, 3)) for i in range(3)]
    assert sum(r.total for r in reports) == len(GOOD) + len(BAD)
    assert sum(r.done for r in reports) == len(GOOD)
    store = FeatureStore(out)        # would raise if a video were stored twice
    assert sorted(store.ids) == sorted(GOOD)
    prefixes = {p.name.split("-")[0] for p in (out / "shards").glob("*.index.parquet")}
    assert prefixes <= {"s0000of0003", "s0001of0003", "s0002of0003"} and len(prefixes) >= 2
    assert sorted(p.name for p in (out / "manifests").iterdir()) == [f"s000{i}of0003.json" for i in range(3)]
    # a later run without shards finds everything done
    assert _run(corpus, clip_encoder, out, workers=0).done == 0


def test_store_made_with_other_settings_is_refused(tmp_path, corpus, clip_encoder):
    out = tmp_path / "store"
    extract_videos([corpus / "gen3.mp4"], clip_encoder, out, ExtractConfig(progress=False, workers=0))
    with pytest.raises(ConfigError, match="frames/s"):
        extract_videos([corpus / "gen5.mp4"], clip_encoder, out, ExtractConfig(fps=2.0, progress=False))
    (tmp_path / "no-videos").mkdir()
    with pytest.raises(ConfigError, match="no video files"):
        extract_videos([tmp_path / "no-videos"], clip_encoder, out, ExtractConfig(progress=False))
    with pytest.raises(ConfigError, match="--fps"):
        ExtractConfig(fps=0)


@pytest.mark.parametrize("option", ["pool=mean", "std=0.5,0.5,0.5", "mean=clip", "mode=pad", "resample=bilinear"])
def test_a_store_refuses_features_made_with_other_encoder_settings(tmp_path, corpus, tiny_onnx, option):
    from typer.testing import CliRunner

    from c2kd.cli import app

    runner = CliRunner()
    out = tmp_path / "store"

    def extract(video: str, *extra: str):
        return runner.invoke(app, ["extract", str(corpus / video), "--out", str(out), *onnx_cli_args(tiny_onnx),
                                   "--option", "pool=cls", *extra, "--workers", "0", "--no-progress"])

    first = extract("gen3.mp4")
    assert first.exit_code == 0, first.output
    key, value = option.split("=")
    other = extract("gen5.mp4", "--option", option)
    assert isinstance(other.exception, ConfigError), other.output
    message = str(other.exception)
    assert f"{key}={value!r}" in message or f"{key}=[" in message      # names the setting that differs ...
    assert "--option" in message and "another --out" in message        # ... and the fixes
    assert FeatureStore(out).ids == ["gen3"]                           # nothing was mixed in
    # the same settings (the model given by another path to the same file) go on filling the store
    relative = os.path.relpath(tiny_onnx)
    same = runner.invoke(app, ["extract", str(corpus / "gen5.mp4"), "--out", str(out), "--encoder", "onnx", "--model",
                               relative, "--option", "size=48", "--option", "pool=cls", "--workers", "0",
                               "--no-progress"])
    assert same.exit_code == 0, same.output
    assert sorted(FeatureStore(out).ids) == ["gen3", "gen5"]


def test_two_frames_per_second_keep_the_colour_timeline(tmp_path, clip_encoder):
    path = write_colour_seconds(tmp_path / "c.mp4", seconds=4)
    report = extract_videos([path], clip_encoder, tmp_path / "store", ExtractConfig(fps=2.0, progress=False))
    store = FeatureStore(tmp_path / "store")
    np.testing.assert_allclose(store.times("c"), np.arange(8) / 2, atol=1e-6)
    # rows 2k and 2k+1 are both second k: the same solid colour gives the same feature
    feats = store["c"].astype(np.float32)
    np.testing.assert_allclose(feats[0::2], feats[1::2], atol=2e-2)
    assert report.frames == 8 and colour(0) != colour(1)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "c2kd", "extract", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    return env


def _forty_video_run(tmp_path: Path, out: Path, tiny_onnx: Path, workers: int) -> list[str]:
    """The command line of a real extract of 40 copies of a 20 s clip into ``out``, one shard per 4 videos."""
    videos = tmp_path / "videos"
    videos.mkdir()
    one = write_colour_seconds(tmp_path / "one.mp4", seconds=20, rate=10)
    for i in range(40):
        shutil.copy(one, videos / f"v{i:02d}.mp4")
    return _cli(str(videos), "--out", str(out), *onnx_cli_args(tiny_onnx), "--workers", str(workers),
                "--batch-size", "4", "--flush-seconds", "0", "--no-progress")


def test_killed_run_loses_nothing_and_rerun_does_nothing_twice(tmp_path, tiny_onnx):
    out = tmp_path / "store"
    args = _forty_video_run(tmp_path, out, tiny_onnx, workers=0)
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "shards").glob("*.index.parquet"))) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    output = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{output}"
    done_before = len(FeatureStore(out))       # only whole shards count; a half-written one is invisible
    assert 2 <= done_before < 40
    rerun = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{40 - done_before} extracted" in rerun.stdout and f"{done_before} already done" in rerun.stdout
    store = FeatureStore(out)                   # raises if any video were stored twice
    assert sorted(store.ids) == [f"v{i:02d}" for i in range(40)]
    assert all(len(store[v]) == 20 for v in store.ids)


@needs_namespaces
@pytest.mark.parametrize("mount,words", [("ro", "Read-only file system"),
                                         ("size=8k", "No space left on device")])
def test_a_read_only_or_full_disk_is_one_line(tmp_path, colour_video, tiny_onnx, mount, words):
    """A real read-only file system, or a real tmpfs that fills up with the store's first shard (one decode
    worker, which ends without a traceback of its own)."""
    disk = tmp_path / "disk"
    proc = run_c2kd("extract", colour_video, "--out", disk / "store", *onnx_cli_args(tiny_onnx), "--no-progress",
                    wrapper=own_tmpfs(disk, mount))
    assert_one_line_error(proc, f"cannot write {disk / 'store'}", words)

def _descendants(pid: int) -> list[int]:
    """Pids of the live processes below ``pid`` (children, theirs, ...; from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except (OSError, IndexError):
        return False


def _start_parallel_run(tmp_path: Path, tiny_onnx: Path) -> tuple[subprocess.Popen, list[int], Path]:
    """A real `c2kd extract --workers 2` of 40 videos, returned once its decode workers run and a shard is in,
    with every process it started (the workers, and the fork server and resource tracker that may come with
    them)."""
    out = tmp_path / "store"
    args = _forty_video_run(tmp_path, out, tiny_onnx, workers=2)
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _descendants(proc.pid)
        if len(workers) >= 2 and list((out / "shards").glob("*.index.parquet")):
            return proc, workers, out
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=60)
    pytest.fail(f"the run ended (or never started its workers) before the test could stop it:\n{stdout}{stderr}")


def _wait_until_gone(pids: list[int], seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def test_decode_workers_die_with_a_killed_run(tmp_path, tiny_onnx):
    proc, workers, _ = _start_parallel_run(tmp_path, tiny_onnx)
    assert proc.poll() is None, "the run ended before it could be killed: its workers ended with it, as they should"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)  # not communicate(): live workers would hold its output pipes open
    assert proc.returncode == -signal.SIGKILL, f"the run ended ({proc.returncode}) before it could be killed"
    left = _wait_until_gone(workers)
    for pid in left:  # do not leave them behind
        os.kill(pid, signal.SIGKILL)
    proc.stdout.close()
    proc.stderr.close()
    assert not left, f"decode workers {left} outlived their killed parent"


def test_a_stopped_run_prints_no_worker_traceback(tmp_path, tiny_onnx):
    """SIGTERM stops the run (finished videos committed); its workers are stopped quietly with it."""
    proc, workers, out = _start_parallel_run(tmp_path, tiny_onnx)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0, f"the run ended before SIGTERM stopped it:\n{stdout}"
    assert not _wait_until_gone(workers)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert 1 <= len(FeatureStore(out)) < 40


def _file_size_limit(limit: int):
    """For ``preexec_fn``: files of the child cannot grow past ``limit`` bytes (writes fail as on a full disk)."""
    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("seconds,fps,failing", [(20, 10, ".npy"), (3, 1, ".index.parquet")],
                         ids=["data-file", "index-file"])
def test_a_full_disk_leaves_no_half_shard_and_a_rerun_completes(tmp_path, tiny_onnx, seconds, fps, failing):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        write_colour_seconds(videos / f"v{i}.mp4", seconds=seconds)
    out = tmp_path / "store"
    args = _cli(str(videos), "--out", str(out), *onnx_cli_args(tiny_onnx), "--fps", str(fps), "--workers", "0",
                "--flush-seconds", "0", "--no-progress")
    env = {**_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    # 1000 bytes: store.json, the manifest and a short video's data file fit; its index or a long one's data not
    full = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_file_size_limit(1000), check=False)
    assert full.returncode == 2, full.stdout + full.stderr
    assert "Traceback" not in full.stderr, full.stderr
    assert re.search(rf"cannot write \S+/shards/part-\w+{re.escape(failing)}: .*run the same command again",
                     full.stderr), full.stderr
    assert sorted(p.name for p in (out / "shards").iterdir()) == []  # no .tmp, no data file without its index
    # what a run killed while writing leaves, and another shard's file (its own run cleans it, not this one)
    shards = out / "shards"
    for name in (".part-0123456789ab.npy.tmp", ".part-0123456789ab.index.tmp", "part-ba9876543210.npy",
                 "s0000of0002-0123456789ab.npy"):
        (shards / name).write_bytes(b"x" * 10)
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "3 extracted" in rerun.stdout
    store = FeatureStore(out)
    assert sorted(store.ids) == ["v0", "v1", "v2"] and all(len(store[v]) == seconds * fps for v in store.ids)
    left = {p.name for p in shards.iterdir() if not p.name.endswith(".index.parquet")}
    assert left == {"s0000of0002-0123456789ab.npy"} | {p.name[: -len(".index.parquet")] + ".npy"
                                                       for p in shards.glob("part-*.index.parquet")}


def test_a_second_run_of_one_shard_is_refused(tmp_path, corpus, tiny_onnx):
    from c2kd.errors import BusyError
    from c2kd.features.encoders import build_frame_encoder
    from c2kd.locking import exclusive_lock

    encoder = build_frame_encoder("onnx", model=str(tiny_onnx), size=48)
    out = tmp_path / "store"
    held = exclusive_lock(out / ".part.lock", "an extraction of shard 0/1 into this store")  # as a running one
    busy = f"an extraction of shard 0/1 into this store is in progress, pid {os.getpid()}"
    with held:
        with pytest.raises(BusyError, match=busy):
            extract_videos([corpus / "gen3.mp4"], encoder, out, ExtractConfig(progress=False, workers=0))
        other = extract_videos([corpus], encoder, out, ExtractConfig(progress=False, workers=0, shard=(1, 2)))
        assert other.shard == "1/2"  # other shards write other files: not held up
    report = extract_videos([corpus / "gen3.mp4"], encoder, out, ExtractConfig(progress=False, workers=0))
    assert report.done + report.already_done == 1 and "gen3" in FeatureStore(out)


def test_torchrun_ranks_split_the_corpus(tmp_path, corpus, tiny_onnx):
    out = tmp_path / "store"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "c2kd", "extract", str(corpus), "--out", str(out), *onnx_cli_args(tiny_onnx),
            "--shard", "env", "--workers", "0", "--no-progress"]
    result = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shard 0/2" in result.stdout and "shard 1/2" in result.stdout
    store = FeatureStore(out)
    assert {vid: len(store[vid]) for vid in store.ids} == GOOD
    manifests = sorted(p.name for p in (out / "manifests").iterdir())
    assert manifests == ["s0000of0002.json", "s0001of0002.json"]
    assert load_failures(out).keys() == BAD


def test_cli_extract_and_its_errors(tmp_path, corpus, tiny_clip):
    from typer.testing import CliRunner

    from c2kd.cli import app

    runner = CliRunner()
    out = tmp_path / "store"
    result = runner.invoke(app, ["extract", str(corpus / "gen3.mp4"), str(corpus / "noise.mp4"), "--out",
                                 str(out), "--encoder", "clip-vit-b32", "--model", str(tiny_clip),
                                 "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "1 extracted (3 frames" in result.output and "1 failed" in result.output
    assert "noise.mp4" in result.output and "manifests" in result.output
    assert FeatureStore(out).ids == ["gen3"]
    # a partial success exits 0 (above); when every input failed the command fails
    nothing = runner.invoke(app, ["extract", str(corpus / "noise.mp4"), "--out", str(tmp_path / "none"), "--encoder",
                                  "clip-vit-b32", "--model", str(tiny_clip), "--workers", "0", "--no-progress"])
    assert nothing.exit_code == 1 and "nothing was extracted" in nothing.output
    for fps in ("nan", "inf", "0"):
        refused = runner.invoke(app, ["extract", str(corpus / "gen3.mp4"), "--out", str(tmp_path / "fps"), "--fps", fps])
        assert isinstance(refused.exception, ConfigError) and "--fps" in str(refused.exception)
        assert not (tmp_path / "fps").exists()  # nothing written
    bad = runner.invoke(app, ["extract", str(corpus), "--out", str(out), "--shard", "3/2"])
    assert isinstance(bad.exception, ConfigError)
    clash = tmp_path / "clash"
    (clash / "a").mkdir(parents=True)
    (clash / "b").mkdir()
    shutil.copy(corpus / "gen3.mp4", clash / "a" / "x.mp4")
    shutil.copy(corpus / "gen5.mp4", clash / "b" / "x.mp4")
    collide = runner.invoke(app, ["extract", str(clash), "--out", str(tmp_path / "s2"), "--encoder", "clip-vit-b32",
                                  "--model", str(tiny_clip), "--no-progress"])
    assert isinstance(collide.exception, ConfigError) and "collision" in str(collide.exception)
    ok = runner.invoke(app, ["extract", str(clash), "--out", str(tmp_path / "s2"), "--encoder", "clip-vit-b32",
                             "--model", str(tiny_clip), "--id-from", "relpath", "--workers", "0", "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert sorted(FeatureStore(tmp_path / "s2").ids) == ["a/x", "b/x"]
    assert FeatureStore(tmp_path / "s2").meta["id_from"] == "relpath"
    # the store records how it names its videos: another --id-from would store the same videos twice
    renamed = runner.invoke(app, ["extract", str(clash / "a"), "--out", str(tmp_path / "s2"), "--encoder",
                                  "clip-vit-b32", "--model", str(tiny_clip), "--workers", "0", "--no-progress"])
    assert isinstance(renamed.exception, ConfigError), renamed.output
    assert "names its videos by --id-from relpath, and this run would name them by stem" in str(renamed.exception)
    assert sorted(FeatureStore(tmp_path / "s2").ids) == ["a/x", "b/x"]


def test_writer_refuses_a_store_of_another_dimension(tmp_path, corpus, clip_encoder, focus_cache):
    from c2kd.features.encoders import build_frame_encoder

    out = tmp_path / "store"
    extract_videos([corpus / "gen3.mp4"], clip_encoder, out, ExtractConfig(progress=False, workers=0))
    focus = build_frame_encoder("vit-s14-focus", cache_dir=str(focus_cache))
    with pytest.raises(ConfigError, match=r"this store holds features of clip-vit-b32 .*, and this run would add features of "
                                          r"vit-s14-focus .*384-d instead of 16-d.*Extract with the store's settings "
                                          r"\(--encoder clip-vit-b32 --model "):
        extract_videos([corpus / "gen5.mp4"], focus, out, ExtractConfig(progress=False, workers=0))


def test_extract_shard_is_a_plain_function_for_remote_tasks(tmp_path, corpus, tiny_onnx):
    """What each Ray task (or any remote worker) runs: plain arguments in, a plain dict out."""
    import pickle

    from c2kd.features.extract import extract_shard

    out = str(tmp_path / "store")
    reports = [extract_shard([str(corpus)], out, "onnx", {"model": str(tiny_onnx), "size": 48},
                             {"shard": [i, 2], "workers": 0, "progress": False}) for i in range(2)]
    pickle.dumps(reports)
    assert [r["shard"] for r in reports] == ["0/2", "1/2"]
    assert sum(r["done"] for r in reports) == len(GOOD)
    assert sum(len(r["failed"]) for r in reports) == len(BAD)
    assert sorted(FeatureStore(out).ids) == sorted(GOOD)


@pytest.mark.parametrize("model_args", [[], ["--model", "someone/not-a-cached-clip"]])
def test_uncached_clip_fails_at_once_without_network(tmp_path, model_args, request):
    """No network (the hub's address refuses connections), an empty Hugging Face cache, HF_HUB_OFFLINE unset:
    the CLIP encoder fails before any download retry, naming both fixes."""
    held = socket.socket()  # a loopback port held and never listened on: connecting is refused at once
    held.bind(("127.0.0.1", 0))
    request.addfinalizer(held.close)
    closed = held.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k not in ("HF_HUB_OFFLINE",
                                                                                             "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=f"http://127.0.0.1:{closed}", PYTHONPATH=str(REPO / "src"))
    video = write_colour_seconds(tmp_path / "one.mp4", seconds=2)
    command = [sys.executable, "-c", "from c2kd.cli import main; main()", "extract", str(video), "--out",
               str(tmp_path / "s"), "--encoder", "clip-vit-b32", *model_args, "--no-progress"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot be reached" in result.stderr and "local folder" in result.stderr
    assert "Traceback" not in result.stderr and "Search your own videos" in result.stderr
    # issue 36: the packaged encoder is no way to search with text: it is named as not text-aligned, not offered
    assert "works offline, but its features are not text-aligned" in result.stderr
    assert "or extract with --encoder vit-s14-focus" not in result.stderr
    assert not (tmp_path / "s").exists()
