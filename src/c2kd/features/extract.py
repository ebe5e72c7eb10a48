"""Video files -> per-second frame features in a feature store: reader -> encoder -> writer.

* reader (:mod:`c2kd.features.reader`): decodes each video in order, samples ``fps`` frames per second, resizes
  them for the encoder, in this process or in ``workers`` processes;
* encoder (:mod:`c2kd.features.encoders`): encodes frames in batches that may mix videos;
* writer (:class:`c2kd.data.features.FeatureStoreWriter`): stores each finished video with its timestamps and
  its length (what its file states, so a 50.07 s video is 50.07 s long, not "last sample + 1 s");
  shards are committed atomically every ``flush_every`` videos or ``flush_seconds``.

Resumable: videos already in the store are skipped, and files that failed before (same size and mtime) are not
retried unless ``retry_failed``. Failures are listed in ``STORE/manifests/<shard>.json`` (path, reason).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.data.features import STORE_FILE, FeatureStoreWriter
from c2kd.encoders.frames import describe_parts, joined, mismatches, parts_of, store_frame_encoder
from c2kd.errors import ConfigError
from c2kd.features.encoders import FrameEncoder, command_line, encoder_spec
from c2kd.features.jobs import VideoJob, discover_videos, make_jobs, select_shard
from c2kd.features.reader import Failed, Finished, Frames, read_inline, read_parallel
from c2kd.features.timed_text.step import TimedTextReport, TimedTextSettings, add_timed_text
from c2kd.io import write_json
from c2kd.locking import exclusive_lock

MANIFEST_DIR = "manifests"


@dataclass
class ExtractConfig:
    """Options of one extraction run (see ``c2kd extract --help``)."""

    fps: float = 1.0
    workers: int = 1                   # decode processes; 0 decodes in the main process
    batch_size: int = 64               # frames per encoder call (may mix videos)
    shard: tuple[int, int] = (0, 1)    # (i, n): this run extracts shard i of n
    id_from: str | Callable[[Path], str] = "stem"
    flush_every: int = 64              # videos per committed store shard
    flush_seconds: float = 60.0        # ... or at least this often, so a kill loses little work
    retry_failed: bool = False
    idle_encode_seconds: float = 2.0   # encode a partial batch when the reader sent nothing for this long
    decoder_threads: int | None = None  # FFmpeg threads per video (default: 1 with workers, auto without)
    progress: bool = True
    timed_text: TimedTextSettings | None = None  # subtitles / speech of each video too (c2kd.features.timed_text)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ConfigError(f"--fps must be positive, got {self.fps}")
        if self.workers < 0 or self.batch_size < 1 or self.flush_every < 1:
            raise ConfigError("--workers must be >= 0, --batch-size and flush_every >= 1")


@dataclass
class ExtractReport:
    """What a run did. ``failed``: (path, reason) of the videos that failed in this run."""

    store: str
    shard: str
    total: int = 0               # videos of this shard
    done: int = 0                # extracted in this run
    already_done: int = 0        # found in the store
    skipped_failed: int = 0      # failed in an earlier run, not retried
    frames: int = 0
    seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)
    manifest: str = ""
    timed_text: TimedTextReport | None = None

    @property
    def videos_per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def shard_prefix(index: int, total: int) -> str:
    """Store-shard file prefix of one corpus shard (each writer has its own)."""
    return "part" if total == 1 else f"s{index:04d}of{total:04d}"


def _file_key(path: str) -> dict[str, Any]:
    try:
        st = os.stat(path)
        return {"size": st.st_size, "mtime": st.st_mtime}
    except OSError:
        return {"size": None, "mtime": None}


def load_failures(store: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Failed videos recorded by earlier runs of any shard: id -> {path, reason, size, mtime}."""
    failures: dict[str, dict[str, Any]] = {}
    folder = Path(store) / MANIFEST_DIR
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            failures.update(json.loads(path.read_text()).get("failed", {}))
        except (json.JSONDecodeError, OSError):
            continue  # written atomically, so only a foreign file lands here
    return failures


class _Manifest:
    """The failure list of one shard, rewritten atomically on every change."""

    def __init__(self, store: Path, prefix: str, shard: str, encoder: str):
        self.path = store / MANIFEST_DIR / f"{prefix}.json"
        self.data: dict[str, Any] = {"shard": shard, "encoder": encoder, "failed": {}}
        if self.path.exists():
            self.data["failed"] = json.loads(self.path.read_text()).get("failed", {})

    def fail(self, job: VideoJob, reason: str) -> None:
        self.data["failed"][job.video_id] = {"path": job.path, "reason": reason, **_file_key(job.path)}
        self.save()

    def succeed(self, job: VideoJob) -> None:
        if self.data["failed"].pop(job.video_id, None) is not None:
            self.save()

    def save(self, **summary: Any) -> None:
        self.data.update(summary)
        write_json(self.path, self.data)


def _id_mode(id_from: str | Callable[[Path], str]) -> str:
    """How a store's videos are named, as recorded in it: the ``--id-from`` mode, or ``custom``."""
    return id_from if isinstance(id_from, str) else "custom"


def check_store(out: Path, encoder: FrameEncoder, fps: float, id_from: str | Callable[[Path], str] = "stem") -> None:
    """Refuse to add features to a store that holds features made with other settings (they would not compare:
    :func:`c2kd.encoders.frames.mismatches` decides), or whose videos are named another way (the same videos
    would be stored twice)."""
    meta_path = out / STORE_FILE
    if not meta_path.exists():
        return
    meta = json.loads(meta_path.read_text())
    if meta.get("id_from") is not None and meta["id_from"] != _id_mode(id_from):
        raise ConfigError(f"{meta_path}: this store names its videos by --id-from {meta['id_from']}, and this run "
                          f"would name them by {_id_mode(id_from)}: the same videos would be stored twice. Use "
                          f"--id-from {meta['id_from']}, or another --out folder")
    if meta.get("fps") is not None and abs(float(meta["fps"]) - fps) > 1e-9:
        raise ConfigError(f"{meta_path}: this store holds features at {meta['fps']} frames/s, not {fps}; "
                          "use the same --fps or another --out folder")
    recorded = store_frame_encoder(meta)
    wanted = parts_of(encoder_spec(encoder))
    problems = mismatches(recorded, wanted) if recorded else []
    if problems:
        stored = joined(recorded)
        assert stored is not None
        settings = command_line(stored) or "the same encoder"
        raise ConfigError(f"{meta_path}: this store holds features of {describe_parts(recorded)}, and this run "
                          f"would add features of {describe_parts(wanted)} ({'; '.join(problems)}); mixed in one "
                          f"store they would not compare. Extract with the store's settings ({settings}) or use "
                          "another --out folder")


def extract_jobs(jobs: Sequence[VideoJob], encoder: FrameEncoder, out: str | os.PathLike,
                 config: ExtractConfig | None = None) -> ExtractReport:
    """Extract features of ``jobs`` (already ids and shard-selected) into the store ``out``.

    One run per shard of a store at a time: another run of the same shard is refused with this one's pid
    (:class:`~c2kd.errors.BusyError`); files a killed or failed run left half-written are deleted first.
    """
    config = config or ExtractConfig()
    out = Path(out)
    index, total = config.shard
    prefix = shard_prefix(index, total)
    check_store(out, encoder, config.fps, config.id_from)
    with exclusive_lock(out / f".{prefix}.lock", f"an extraction of shard {index}/{total} into this store",
                        subject=out):
        return _extract_locked(jobs, encoder, out, config, prefix)


def _extract_locked(jobs: Sequence[VideoJob], encoder: FrameEncoder, out: Path, config: ExtractConfig,
                    prefix: str) -> ExtractReport:
    """:func:`extract_jobs` once this run holds its shard's lock."""
    index, total = config.shard
    writer = FeatureStoreWriter(out, encoder.dim, encoder=encoder.name, fps=config.fps, prefix=prefix,
                                flush_every=config.flush_every,
                                extra={"extractor": encoder.describe(), "id_from": _id_mode(config.id_from)})
    writer.remove_orphans()  # of a run killed or out of disk space while writing a shard
    manifest = _Manifest(out, prefix, f"{index}/{total}", encoder.name)
    report = ExtractReport(store=str(out), shard=f"{index}/{total}", total=len(jobs), manifest=str(manifest.path))
    previous_failures = {} if config.retry_failed else load_failures(out)
    todo = []
    for job in jobs:
        if job.video_id in writer:
            report.already_done += 1
        elif (job.video_id in previous_failures
              and {k: previous_failures[job.video_id].get(k) for k in ("size", "mtime")} == _file_key(job.path)):
            report.skipped_failed += 1
        else:
            todo.append(job)
    start = time.perf_counter()
    with writer:
        _run(todo, encoder, writer, manifest, config, report)
    if config.timed_text is not None:  # after the frames, so a failure here loses none of them
        report.timed_text = add_timed_text(jobs, out, prefix, config.timed_text)
        manifest.save(timed_text_failed=dict(report.timed_text.failed))
    report.seconds = time.perf_counter() - start
    manifest.save(last_run={"done": report.done, "failed": len(report.failed), "frames": report.frames,
                            "seconds": round(report.seconds, 3), "already_done": report.already_done,
                            "skipped_failed": report.skipped_failed})
    return report


def _run(todo: list[VideoJob], encoder: FrameEncoder, writer: FeatureStoreWriter, manifest: _Manifest,
         config: ExtractConfig, report: ExtractReport) -> None:
    from c2kd.progress import progress_bar

    if config.workers > 0:
        messages = read_parallel(todo, config.fps, encoder.preprocess, config.workers,
                                 threads=1 if config.decoder_threads is None else config.decoder_threads,
                                 chunk=config.batch_size)
    else:
        messages = read_inline(todo, config.fps, encoder.preprocess,
                               threads=config.decoder_threads or 0, chunk=config.batch_size)
    bar = progress_bar(total=len(todo), unit="video", desc=f"extract {report.shard}", disable=not config.progress,
                       dynamic_ncols=True)
    pending: list[tuple[int, np.ndarray]] = []     # frames waiting for the encoder: (job, image)
    features: dict[int, list[np.ndarray]] = {}     # encoded rows so far, per job
    times: dict[int, list[float]] = {}
    finished: dict[int, tuple[int, float | None]] = {}  # job -> (frames, seconds), once the reader is done
    last_flush = time.perf_counter()
    started = time.perf_counter()

    def encode_pending() -> None:
        if not pending:
            return
        rows = encoder.encode([im for _, im in pending])
        for (job, _), row in zip(pending, rows):
            features[job].append(row)
        pending.clear()

    def write_ready() -> None:
        nonlocal last_flush
        waiting = {job for job, _ in pending}
        for job in [j for j in finished if j not in waiting]:
            count, duration = finished.pop(job)
            rows, stamps = features.pop(job, []), times.pop(job, [])
            if count == 0 or not rows:
                _fail(job, "no frame sampled (video shorter than one frame interval?)")
                continue
            writer.add(todo[job].video_id, np.stack(rows), stamps, duration=duration)
            manifest.succeed(todo[job])
            report.done += 1
            report.frames += len(rows)
            bar.update(1)
        elapsed = time.perf_counter() - started
        bar.set_postfix(frames_s=f"{report.frames / max(elapsed, 1e-9):.1f}", failed=len(report.failed),
                        refresh=False)
        if time.perf_counter() - last_flush > config.flush_seconds:
            writer.flush()
            last_flush = time.perf_counter()

    def _fail(job: int, reason: str) -> None:
        manifest.fail(todo[job], reason)
        report.failed.append((todo[job].path, reason))
        bar.update(1)

    try:
        idle_since: float | None = None
        for message in messages:
            if message is None:
                # The reader is slow (long or high-resolution videos): after a while, encode a partial batch
                # so finished videos get written. Otherwise wait for full batches (much faster per frame).
                now = time.perf_counter()
                idle_since = idle_since or now
                if now - idle_since >= config.idle_encode_seconds:
                    encode_pending()
                    write_ready()
                    idle_since = None
                continue
            idle_since = None
            if isinstance(message, Frames):
                features.setdefault(message.job, [])
                times.setdefault(message.job, []).extend(message.times)
                pending.extend((message.job, im) for im in message.images)
                if len(pending) >= config.batch_size:
                    encode_pending()
                    write_ready()
            elif isinstance(message, Finished):
                finished[message.job] = (message.n_frames, message.duration)
                write_ready()
            elif isinstance(message, Failed):
                pending[:] = [(j, im) for j, im in pending if j != message.job]
                features.pop(message.job, None)
                times.pop(message.job, None)
                _fail(message.job, message.reason)
        encode_pending()
        write_ready()
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            close()
        bar.close()


def extract_videos(inputs: Sequence[str | os.PathLike], encoder: FrameEncoder, out: str | os.PathLike,
                   config: ExtractConfig | None = None, list_files: Sequence[str | os.PathLike] = ()
                   ) -> ExtractReport:
    """Find the videos under ``inputs``, keep this run's shard, and extract them into ``out``.

    Example:
        >>> from c2kd.features.encoders import build_frame_encoder  # doctest: +SKIP
        >>> extract_videos(["videos/"], build_frame_encoder("vit-s14-focus"), "features")  # doctest: +SKIP
    """
    config = config or ExtractConfig()
    jobs = make_jobs(discover_videos(inputs, list_files), config.id_from)
    if not jobs:
        raise ConfigError(f"no video files found in {[str(i) for i in inputs]}")
    return extract_jobs(select_shard(jobs, *config.shard), encoder, out, config)


def extract_shard(inputs: Sequence[str], out: str, encoder_name: str, encoder_options: dict[str, Any],
                  config: dict[str, Any]) -> dict[str, Any]:
    """Build the encoder and extract one shard; plain arguments in and out, for remote tasks (Ray, torchrun).

    ``config`` holds :class:`ExtractConfig` fields (``shard`` as [i, n]). Returns the report as a dict.
    """
    from c2kd.features.encoders import build_frame_encoder

    cfg = ExtractConfig(**{**config, "shard": tuple(config.get("shard", (0, 1)))})
    report = extract_videos(inputs, build_frame_encoder(encoder_name, **encoder_options), out, cfg)
    return {**asdict(report), "videos_per_second": report.videos_per_second,
            "frames_per_second": report.frames_per_second}
