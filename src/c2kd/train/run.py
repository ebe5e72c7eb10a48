"""Build everything a training run needs from its config and fit: the one function behind `c2kd train`."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from c2kd.data.dataset import TrainingPairs, VideoTextDataset
from c2kd.errors import ConfigError, DataError
from c2kd.evaluation.evaluator import RetrievalEvaluator, flatten_metrics
from c2kd.io import write_json
from c2kd.languages import ENGLISH
from c2kd.losses.objective import RetrievalObjective
from c2kd.model import DualEncoder, build_model
from c2kd.train.config import TrainConfig, dump_config
from c2kd.train.sampler import EpochBatchSampler
from c2kd.train.tasks import RetrievalTask
from c2kd.train.trainer import Trainer, seed_everything

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    return device


def write_model_extras(config: TrainConfig, model: DualEncoder):
    """Files that make a checkpoint folder self-contained: config.yaml, the text backbone's architecture."""

    def write(directory: Path, metrics: dict | None) -> None:
        from c2kd.checkpoint import BACKBONE_DIR, CONFIG_FILE

        (directory / CONFIG_FILE).write_text(dump_config(config))
        model.text.backbone.save_architecture(directory / BACKBONE_DIR)
        if metrics is not None:
            write_json(directory / "metrics.json", metrics)

    return write


def build_teacher_scores(config: TrainConfig, split, feature_dim: int, student_languages: list[str],
                         device: torch.device):
    """Load the run's teachers and return a cached (default) or live score provider, or None."""
    if config.stage != "c2kd":
        return None
    from c2kd.distill.teachers import CachedTeacherScores, LiveTeacherScores, load_teachers

    teachers = load_teachers(config.teachers.checkpoints, feature_dim, device)
    max_tokens = config.model.text.max_tokens
    if not config.teachers.cache:
        return LiveTeacherScores(teachers, config.teachers.language, max_tokens)
    text_langs = [ENGLISH] if config.teachers.language == "english" else student_languages
    scores = CachedTeacherScores(teachers, split, text_langs, config.teachers.language, max_tokens,
                                 device=device, progress=config.progress)
    for teacher in teachers:
        teacher.to("cpu")  # embeddings are cached: free the accelerator
    return scores


def train(config: TrainConfig, resume: bool = True) -> Path:
    """Train one model (teacher or student) as ``config`` says; returns the run folder.

    The run folder holds ``config.yaml``, ``best/`` (selected on the validation split, never the test split),
    ``last/`` (for resuming), ``history.json``, ``tensorboard/`` and, if a test split is set, ``test_metrics.json``.
    """
    out = Path(config.out_dir)
    if not resume and (out / "last").exists():
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another out_dir")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    dataset = VideoTextDataset(config.data.path)
    student_langs = config.training_languages(dataset.languages)
    missing = [lang for lang in student_langs if lang not in dataset.languages]
    if missing:
        raise DataError(f"{dataset.root}: training languages {missing} are not in the dataset ({dataset.languages})")
    pair_langs = list(student_langs)
    if config.stage == "c2kd" and config.teachers.language == "english" and ENGLISH not in pair_langs:
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
        evaluator = RetrievalEvaluator(val, eval_langs, config.tie_policy, directions=("t2v",))
        evaluate = lambda model: flatten_metrics(evaluator(model))  # noqa: E731
    monitor = config.monitor if evaluate is not None else "loss"

    model = build_model(config.model)
    teacher_scores = build_teacher_scores(config, split, dataset.features.dim, student_langs, device)
    objective = RetrievalObjective(config.loss.alpha, config.loss.nce_temperature, config.loss.kd_temperature,
                                   config.loss.distillation, config.loss.symmetric)
    task = RetrievalTask(model, objective, student_langs, teacher_scores, config.teachers.pooler,
                         config.model.text.max_tokens)
    pairs = TrainingPairs(split, pair_langs, config.model.video.max_frames, config.seed)
    sampler = EpochBatchSampler(len(pairs), config.batch_size, config.seed)
    loader = torch.utils.data.DataLoader(pairs, batch_sampler=sampler, collate_fn=pairs.collate,
                                         num_workers=config.data.num_workers, pin_memory=device.type == "cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.optim.lr_decay)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(config))
    trainer = Trainer(model, task, loader, optimizer, scheduler, out, config.epochs, device, evaluate, monitor,
                      write_model_extras(config, model), config.precision, config.optim.grad_clip,
                      config.log_every, progress=config.progress, tensorboard=config.tensorboard)
    trainer.fit()
    if config.data.test_split and config.data.test_split in dataset.splits:
        from c2kd.checkpoint import load_checkpoint

        best, _ = load_checkpoint(out, device=device)
        test = dataset.split(config.data.test_split, eval_langs)
        results = RetrievalEvaluator(test, eval_langs, config.tie_policy)(best)
        write_json(out / "test_metrics.json", results)
    return out
