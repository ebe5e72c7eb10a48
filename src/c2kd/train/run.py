"""Build everything a training run needs from its config and fit: the one function behind `c2kd train`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch

from c2kd.checkpoint import (
    BEST_AVERAGE_DIR,
    BEST_DIR,
    CONFIG_FILE,
    EVALUATION_SETTINGS,
    LAST_DIR,
    NOT_IDENTITY,
    RESUMABLE_SETTINGS,
    TEST_METRICS_FILE,
    changed_settings,
    load_checkpoint,
    save_checkpoint,
    write_run_config,
)
from c2kd.data.dataset import TrainingPairs, VideoTextDataset
from c2kd.distill.teachers import (
    CachedTeacherScores,
    GlobalCachedTeacherScores,
    LiveTeacherScores,
    TeacherScores,
    build_teacher_scores,
)
from c2kd.errors import ConfigError, DataError
from c2kd.evaluation.evaluator import RetrievalEvaluator, flatten_metrics
from c2kd.io import write_json
from c2kd.languages import ENGLISH
from c2kd.locking import exclusive_lock, lock_file_beside
from c2kd.losses.objective import RetrievalObjective
from c2kd.model import DualEncoder, build_model
from c2kd.runtime import resolve_device
from c2kd.train.aligned_start import fit_mix_map
from c2kd.train.config import TrainConfig, load_config
from c2kd.train.distributed import (
    DistEnv,
    barrier,
    broadcast_evaluate,
    detect_env,
    gather_no_grad,
    gather_with_grad,
    init_distributed,
    local_device,
    wrap_ddp,
)
from c2kd.train.optim import build_optimizer, dense_gradients
from c2kd.train.sampler import EpochBatchSampler
from c2kd.train.tasks import RetrievalTask
from c2kd.train.trainer import SaveCheckpoint, Trainer, TrainerState, seed_everything

log = logging.getLogger(__name__)


def checkpoint_saver(config: TrainConfig) -> SaveCheckpoint:
    """The trainer's ``save`` callback: complete checkpoint folders of ``config``'s run (see `save_checkpoint`)."""

    def save(directory: Path, model: torch.nn.Module, metrics: dict[str, float] | None,
             resume_state: dict | None) -> Path:
        if not isinstance(model, DualEncoder):
            raise TypeError(f"a c2kd checkpoint holds a DualEncoder, not a {type(model).__name__}")
        return save_checkpoint(directory, model, config, metrics, resume_state)

    return save


def teacher_scores_for(config: TrainConfig, split, feature_dim: int, student_languages: list[str],
                       device: torch.device) -> TeacherScores | None:
    """The run's provider of pooled teacher scores, or None when its loss does not distill."""
    if not config.loss.uses_teachers:
        return None
    return build_teacher_scores(config.teachers, split, feature_dim, student_languages,
                                config.model.text.max_tokens, device, progress=config.progress,
                                frame_encoder=config.model.frame_encoder)


@dataclass
class RunParts:
    """Everything :func:`train` builds before fitting (also used by ``bench/bench_step.py``)."""

    config: TrainConfig
    env: DistEnv
    device: torch.device
    dataset: VideoTextDataset
    model: DualEncoder
    task: RetrievalTask
    pairs: TrainingPairs
    loader: torch.utils.data.DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    evaluate: Callable | None
    monitor: str
    eval_languages: list[str]


def per_process_batch(batch_size: int, env: DistEnv) -> int:
    """``batch_size`` is the global batch; each of ``world`` processes reads ``batch_size / world`` items."""
    if batch_size % env.world:
        raise ConfigError(f"batch_size={batch_size} is the global batch and must divide by the {env.world} "
                          f"processes: choose batch_size={batch_size - batch_size % env.world or env.world}")
    if batch_size // env.world < 1:
        raise ConfigError(f"batch_size={batch_size} is smaller than the number of processes ({env.world})")
    return batch_size // env.world


def prepare_run(config: TrainConfig, env: DistEnv | None = None) -> RunParts:
    """Data, model, teachers, task, loader and optimizer of a run (joins the process group if distributed)."""
    env = env or detect_env()
    seed_everything(config.seed)
    device = local_device(env, resolve_device(config.device))
    init_distributed(env, device)
    dataset = VideoTextDataset(config.data.path)
    student_langs = config.training_languages(dataset.languages)
    missing = [lang for lang in student_langs if lang not in dataset.languages]
    if missing:
        raise DataError(f"{dataset.root}: training languages {missing} are not in the dataset ({dataset.languages})")
    pair_langs = list(student_langs)
    if config.loss.uses_teachers and config.teachers.language == "english" and ENGLISH not in pair_langs:
        pair_langs.append(ENGLISH)
    split = dataset.split(config.data.train_split, pair_langs, training=True)
    if dataset.features.dim != config.model.video.feature_dim:
        raise ConfigError(
            f"{dataset.features.root} holds {dataset.features.dim}-d frame features but model.video.feature_dim is "
            f"{config.model.video.feature_dim}: set model.video.feature_dim={dataset.features.dim}"
        )
    eval_langs = config.data.eval_languages or dataset.languages
    evaluate = None
    if config.data.val_split:
        val = dataset.split(config.data.val_split, eval_langs)
        evaluator = RetrievalEvaluator(val, eval_langs, config.tie_policy, directions=("t2v",),
                                       missing_ranks=config.missing_ranks)
        evaluate = broadcast_evaluate(lambda model: flatten_metrics(evaluator(cast(DualEncoder, model))), env)
    monitor = config.monitor if evaluate is not None else "loss"

    model = build_model(config.model)
    if not (Path(config.out_dir) / LAST_DIR).exists():  # a resumed run loads its weights instead
        fit_mix_map(model, split, student_langs, config.model.text.max_tokens, progress=config.progress)
    teacher_scores = teacher_scores_for(config, split, dataset.features.dim, student_langs, device)
    encoder, gather = None, None
    if env.enabled or config.optim.grad_clip:  # neither DDP nor gradient clipping takes sparse gradients
        dense_gradients(model)
    if env.enabled:
        model.to(device)
        encoder, gather = wrap_ddp(model, device), gather_with_grad
        if isinstance(teacher_scores, CachedTeacherScores):
            teacher_scores = GlobalCachedTeacherScores(teacher_scores, gather_no_grad)
        elif isinstance(teacher_scores, LiveTeacherScores):
            teacher_scores.gather = gather_no_grad
    task = RetrievalTask(model, RetrievalObjective(config.loss), student_langs, teacher_scores,
                         config.model.text.max_tokens, gather=gather, encoder=encoder)
    pairs = TrainingPairs(split, pair_langs, config.model.video.max_frames, config.seed)
    sampler = EpochBatchSampler(len(pairs), per_process_batch(config.batch_size, env), config.seed,
                                num_replicas=env.world, rank=env.rank)
    loader = torch.utils.data.DataLoader(pairs, batch_sampler=sampler, collate_fn=pairs.collate,
                                         num_workers=config.data.num_workers, pin_memory=device.type == "cuda",
                                         persistent_workers=config.data.num_workers > 0,
                                         # its own RNG: drawing worker seeds must not move the global one (resume)
                                         generator=torch.Generator().manual_seed(config.seed))
    optimizer = build_optimizer(model, config.optim)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.optim.lr_decay)
    return RunParts(config, env, device, dataset, model, task, pairs, loader, optimizer, scheduler, evaluate,
                    monitor, list(eval_langs))


def with_frame_encoder(config: TrainConfig) -> TrainConfig:
    """``config`` with ``model.frame_encoder`` set to the encoder recorded in its dataset's feature store.

    A config that names a frame encoder is checked against the store instead (features of another encoder are
    refused with a message that names the model's encoder).
    """
    from c2kd.data.dataset import DATASET_FILE
    from c2kd.data.features import STORE_FILE, read_store_meta, store_root
    from c2kd.encoders.frames import check_frame_encoder, comparable, joined, parts_of, store_frame_encoder

    root = Path(config.data.path)
    meta_path = root / DATASET_FILE
    if not meta_path.exists():
        return config  # prepare_run reports the missing dataset
    store_meta = store_root(root) / STORE_FILE
    if not store_meta.exists():
        return config
    found = [comparable(p) for p in store_frame_encoder(read_store_meta(store_meta))]  # not, e.g., a cache path
    if not found:
        return config
    if config.model.frame_encoder is not None:
        check_frame_encoder(parts_of(config.model.frame_encoder), found, str(store_meta.parent))
        return config
    return config.model_copy(update={"model": config.model.model_copy(update={"frame_encoder": joined(found)})})


def selection_floor(config: TrainConfig, monitor: str, languages: list[str]) -> list[str]:
    """Per-language versions of an averaged monitor (``t2v/average/R@1`` -> ``t2v/de/R@1``, ...) when
    ``config.keep_every_language`` is set: no language may validate below the start for an epoch to be kept."""
    parts = monitor.split("/")
    if not config.keep_every_language or "average" not in parts:
        return []
    at = parts.index("average")
    return ["/".join([*parts[:at], lang, *parts[at + 1:]]) for lang in languages]


def selection_record(state: TrainerState, monitor: str, floor: list[str], languages: list[str]) -> dict:
    """How ``best/`` was chosen: its epoch (0: the untrained start), whether a floor guarded it, and the languages
    whose floor kept the best epoch by ``monitor`` alone (``best-average/``) out of it."""
    blocked = set(state.blocked)
    return {"epoch": state.best_epoch, "monitor": monitor, "kept_start": state.best_epoch == 0,
            "checkpoint": BEST_DIR, "guarded": bool(floor),
            "blocked_by": [lang for lang, name in zip(languages, floor) if name in blocked]}


def check_run_folder(config: TrainConfig) -> None:
    """Refuse, before any work, a run folder that is, holds or lies in the dataset, or whose ``best/`` or
    ``last/`` is a folder c2kd did not write (a later save would replace it)."""
    from c2kd.formats import CHECKPOINT_MARKER
    from c2kd.io import check_output, check_replaceable

    out = check_output(config.out_dir, None, inputs=(config.data.path,), option="out_dir", overwrite=True)
    for name in (BEST_DIR, BEST_AVERAGE_DIR, LAST_DIR):
        check_replaceable(out / name, CHECKPOINT_MARKER, overwrite_option=None)


def check_same_settings(config: TrainConfig, ignore: tuple[str, ...] = RESUMABLE_SETTINGS) -> None:
    """Refuse to continue, or read back, the run in ``config.out_dir`` if it was made with other settings."""
    out = Path(config.out_dir)
    saved_path = out / CONFIG_FILE
    if not saved_path.exists():
        return
    saved = load_config(saved_path)
    changes = changed_settings(saved, config, ignore)
    if changes:
        raise ConfigError(
            f"{out} holds a run made with other settings ({'; '.join(changes)}; saved in {saved_path}). "
            f"Choose another out_dir, restore those settings to continue it, or delete {out} to start over."
        )


def finished_run_metrics(config: TrainConfig) -> dict | None:
    """The test metrics of the run in ``config.out_dir`` if it finished with the same settings, else None.

    A folder holding a finished run made with other settings (e.g. another ``loss.alpha``) is an error, so a
    rerun with new settings never reads back old results. Results computed with other evaluation settings
    (``tie_policy``, ``missing_ranks``) are not read back either (None): `train` evaluates the run again.
    """
    path = Path(config.out_dir) / TEST_METRICS_FILE
    if not path.exists():
        return None
    check_same_settings(with_frame_encoder(config), ignore=NOT_IDENTITY)
    metrics = json.loads(path.read_text())
    protocol = metrics.get("protocol", {})
    if any(protocol.get(name) != getattr(config, name) for name in EVALUATION_SETTINGS):
        return None
    return metrics


def train(config: TrainConfig, resume: bool = True) -> Path:
    """Train one model (teacher or student) as ``config`` says; returns the run folder.

    The run folder holds ``config.yaml``, ``best/`` (selected on the validation split, never the test split),
    ``last/`` (for resuming), ``history.json``, ``tensorboard/`` and, if a test split is set, ``test_metrics.json``.
    Under ``torchrun`` / ``accelerate launch`` / SLURM (``WORLD_SIZE > 1``) it trains data-parallel
    (:mod:`c2kd.train.distributed`); only rank 0 writes, and every process returns when the run is complete.
    """
    config = with_frame_encoder(config)
    out = Path(config.out_dir)
    env = detect_env()
    # one run per out_dir: a second `c2kd train` on it is refused at once (ranks of one DDP job share rank 0's)
    lock = exclusive_lock(lock_file_beside(out), "a training run in this out_dir", subject=out) if env.is_main \
        else nullcontext()
    with lock:
        return _train_locked(config, out, env, resume)


def _train_locked(config: TrainConfig, out: Path, env: DistEnv, resume: bool) -> Path:
    if not resume and (out / LAST_DIR).exists():
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another out_dir")
    check_run_folder(config)
    if (out / LAST_DIR).exists():
        check_same_settings(config)
    parts = prepare_run(config, env)
    if env.is_main:
        write_run_config(out, config)
    floor = selection_floor(config, parts.monitor, parts.eval_languages)
    trainer = Trainer(parts.model, parts.task, parts.loader, parts.optimizer, parts.scheduler, out, parts.device,
                      config, config.optim, parts.evaluate, parts.monitor, save=checkpoint_saver(config),
                      is_main=env.is_main, floor=floor)
    state = trainer.fit()
    barrier()
    dataset = parts.dataset
    if env.is_main and config.data.test_split and config.data.test_split in dataset.splits:
        test = dataset.split(config.data.test_split, parts.eval_languages)
        evaluator = RetrievalEvaluator(test, parts.eval_languages, config.tie_policy,
                                       missing_ranks=config.missing_ranks)
        best, _ = load_checkpoint(out / BEST_DIR, device=parts.device)
        results = evaluator(best)
        # which checkpoint was tested: epoch 0 means no epoch validated better than the untrained start
        results["selection"] = selection_record(state, parts.monitor, floor, parts.eval_languages)
        if (out / BEST_AVERAGE_DIR).exists() and state.best_average_epoch >= 0:
            # the best epoch by the monitored metric alone (the paper's protocol for comparing methods)
            if state.best_average_epoch == state.best_epoch:
                as_trained = {k: v for k, v in results.items() if k != "selection"}
            else:
                as_trained = evaluator(load_checkpoint(out / BEST_AVERAGE_DIR, device=parts.device)[0])
            as_trained["selection"] = {"epoch": state.best_average_epoch, "monitor": parts.monitor,
                                       "checkpoint": BEST_AVERAGE_DIR}
            results["as_trained"] = as_trained
        write_json(out / TEST_METRICS_FILE, results)
    barrier()
    return out
