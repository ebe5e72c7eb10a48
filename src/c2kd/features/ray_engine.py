"""``c2kd extract --engine ray``: the same extraction, scheduled on a Ray cluster with Ray Data.

The driver finds the videos and names them as a local run does, then splits them into ``tasks`` units by the
stable hash of their ids (unit ``i`` holds exactly the videos ``--shard i/tasks`` would). A Ray Data
``map_batches`` over the units runs them in a pool of ``concurrency`` actors; each actor builds the frame encoder
once (on its own GPU when the cluster has GPUs) and runs :func:`c2kd.features.extract.extract_jobs` on each unit
it is given: decoding in order at the store's fps, encoding in batches of ``batch_size`` frames, committing store
shards (prefix ``s000iof000n``) into the one store. Nothing else is new: the resume rules (stored videos
skipped, earlier failures not retried), the failure manifests and the per-shard locks are those of a local run,
so a Ray run, a local run and ``--shard i/n`` runs can all resume one another's stores.

Every node must see the video files and the store at the same paths (a shared file system).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from c2kd.errors import C2KDError, ConfigError, require
from c2kd.features.encoders import FrameEncoder
from c2kd.features.extract import MANIFEST_DIR, ExtractConfig, ExtractReport, check_store, extract_jobs
from c2kd.features.jobs import VideoJob, discover_videos, make_jobs, select_shard
from c2kd.features.timed_text.step import TimedTextReport

#: units per actor when ``tasks`` is not given: enough to balance uneven videos, few enough to be cheap
UNITS_PER_ACTOR = 4


@dataclass(frozen=True)
class RayEngine:
    """Where and how wide a Ray extraction runs.

    ``address``: the cluster (``auto``, ``HOST:PORT`` of the head, ``ray://...``); None connects to
    ``$RAY_ADDRESS`` or, without it, starts a local cluster for this run. ``concurrency``: actors, each encoding
    with its own copy of the encoder. ``tasks``: units the videos are split into (default
    ``UNITS_PER_ACTOR x concurrency``). ``gpus_per_actor``: None gives each actor one GPU when the cluster has
    GPUs, and none otherwise.
    """

    address: str | None = None
    concurrency: int = 1
    tasks: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency {self.concurrency}: give at least 1 actor")
        if self.tasks is not None and self.tasks < 1:
            raise ConfigError(f"--tasks {self.tasks}: give at least 1 task")
        if self.cpus_per_actor <= 0 or (self.gpus_per_actor is not None and self.gpus_per_actor < 0):
            raise ConfigError("CPUs per actor must be positive and GPUs per actor not negative")

    def units(self) -> int:
        return self.tasks or UNITS_PER_ACTOR * self.concurrency


def _import_ray() -> Any:
    return require("ray", "ray", "c2kd extract --engine ray (and c2kd train --engine ray)")


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """The ``ray`` module, connected: to the cluster this process already joined, else to ``address`` (or a new
    local cluster), disconnected again at the end when this block connected."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address or os.environ.get('RAY_ADDRESS')!r} ({exc}). "
                          "Start one (`ray start --head`) and pass its address with --address, or leave "
                          "--address out to start a local one") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def plan_units(jobs: Sequence[VideoJob], total: int) -> list[dict[str, Any]]:
    """The non-empty units of ``jobs`` split ``total`` ways by id hash, as Ray Data rows (absolute paths, since
    workers run in other folders)."""
    units = []
    for index in range(total):
        mine = select_shard(jobs, index, total)
        if mine:
            units.append({"index": index, "total": total,
                          "jobs": json.dumps([[os.path.abspath(j.path), j.video_id] for j in mine])})
    return units


class ShardExtractor:
    """A Ray Data actor: builds the encoder once, then extracts whole units into the store."""

    def __init__(self, encoder_name: str, encoder_options: dict[str, Any], out: str, config: ExtractConfig):
        from c2kd.features.encoders import build_frame_encoder

        # Decode processes inside an actor: spawned, never forked from a process running Ray's threads.
        os.environ.setdefault("C2KD_MP_START", "spawn")
        self.encoder = build_frame_encoder(encoder_name, **encoder_options)
        self.out = out
        self.config = config

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        """Extract each unit of ``batch``; per unit a JSON report, or the c2kd error it raised (pickled, hex),
        so the driver raises it as itself (Ray would hand it over only as text inside its own exception)."""
        reports, errors = [], []
        for index, total, jobs in zip(batch["index"], batch["total"], batch["jobs"]):
            units = [VideoJob(path, vid) for path, vid in json.loads(str(jobs))]
            config = replace(self.config, shard=(int(index), int(total)), progress=False)
            try:
                reports.append(json.dumps(asdict(extract_jobs(units, self.encoder, self.out, config))))
                errors.append("")
            except C2KDError as exc:  # another unit's work goes on; the driver raises this at the end
                reports.append("")
                errors.append(pickle.dumps(exc).hex())
        return {"report": reports, "error": errors}


def merge_reports(out: Path, parts: Sequence[dict[str, Any]], tasks: int, seconds: float) -> ExtractReport:
    """One report for the whole run from the units' reports (failures in unit order)."""
    merged = ExtractReport(store=str(out), shard=f"all ({tasks} Ray tasks)", seconds=seconds,
                           manifest=str(out / MANIFEST_DIR))
    for part in sorted(parts, key=lambda p: p["shard"]):
        merged.total += part["total"]
        merged.done += part["done"]
        merged.already_done += part["already_done"]
        merged.skipped_failed += part["skipped_failed"]
        merged.frames += part["frames"]
        merged.failed.extend((path, reason) for path, reason in part["failed"])
        merge_timed_text(merged, part.get("timed_text"))
    return merged


def merge_timed_text(merged: ExtractReport, part: dict[str, Any] | None) -> None:
    """Add a unit's timed-text report (as JSON gives it back) to the merged report."""
    if part is None:
        return
    total = merged.timed_text = merged.timed_text or TimedTextReport()
    total.videos += part["videos"]
    total.segments += part["segments"]
    total.already_done += part["already_done"]
    total.failed.extend((path, reason) for path, reason in part["failed"])
    total.warnings.extend(part["warnings"])


def extract_on_ray(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, encoder: FrameEncoder,
                   encoder_name: str, encoder_options: dict[str, Any], config: ExtractConfig | None = None,
                   engine: RayEngine | None = None, list_files: Sequence[str | os.PathLike] = ()) -> ExtractReport:
    """Extract every video under ``inputs`` into the store ``out`` on a Ray cluster; one merged report.

    ``encoder`` (built here) checks the store's settings before anything is scheduled; each actor builds its
    own from ``encoder_name`` and ``encoder_options`` (the same ones). ``config.shard`` must be the whole corpus:
    the units are the shards. A c2kd error of a unit (another run holds its shard, a full disk) is raised as
    itself once the other units are done.

    Example:
        >>> extract_on_ray(["videos/"], "features", build_frame_encoder("vit-s14-focus"), "vit-s14-focus", {},
        ...                engine=RayEngine(concurrency=4))  # doctest: +SKIP
    """
    config = config or ExtractConfig()
    engine = engine or RayEngine()
    if config.shard != (0, 1):
        raise ConfigError("--shard and --engine ray do not go together: the Ray engine runs every shard itself "
                          "(--tasks sets how many); drop --shard")
    out = Path(out).resolve()
    jobs = make_jobs(discover_videos(inputs, list_files), config.id_from)
    if not jobs:
        raise ConfigError(f"no video files found in {[str(i) for i in inputs]}")
    check_store(out, encoder, config.fps, config.id_from)
    total = min(engine.units(), len(jobs))
    units = plan_units(jobs, total)
    with ray_session(engine.address) as ray:
        gpus = engine.gpus_per_actor
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        ray.data.DataContext.get_current().enable_progress_bars = config.progress
        start = time.perf_counter()
        dataset = ray.data.from_items(units, override_num_blocks=len(units))
        extracted = dataset.map_batches(
            ShardExtractor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=engine.concurrency),
            num_cpus=engine.cpus_per_actor, num_gpus=gpus,
            fn_constructor_kwargs={"encoder_name": encoder_name, "encoder_options": encoder_options,
                                   "out": str(out), "config": config})
        rows = extracted.take_all()
        seconds = time.perf_counter() - start
    errors = [pickle.loads(bytes.fromhex(row["error"])) for row in rows if row["error"]]
    if errors:
        raise errors[0]
    return merge_reports(out, [json.loads(row["report"]) for row in rows], total, seconds)
