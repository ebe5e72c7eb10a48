"""A short, generic training loop. It knows nothing of languages, teachers or retrieval.

It runs ``loss_fn(batch) -> {"loss": ..., other named terms}`` over a loader for some epochs, with mixed
precision on CUDA, gradient clipping, a per-epoch LR schedule, validation through ``evaluate(model)``, and
checkpoints through the ``save`` callback it is given: ``last/`` after every epoch (and every
``save_every_steps``), ``best/`` when the monitored validation metric improves and no ``floor`` metric is below
its value at the start (the guarded choice handed to users), ``best-average/`` when the monitored metric improves,
whatever the floor says (the best epoch as trained: what comparisons of methods report). The state records both
epochs and, for the guarded one, the floor metrics that kept a better epoch out of ``best/``. The starting point
is validated too (epoch 0): when no epoch beats it, ``best/`` is the untrained model, so training never hands back
a model that validates worse than where it started (this matters for models that start from an aligned
off-the-shelf encoder). ``fit`` resumes from ``last/`` where a killed run stopped (same data order, same RNG), so nothing is
lost or done twice. With ``average`` set, an exponential moving average of the weights
(:class:`c2kd.train.averaging.WeightAverage`) is what is validated and saved as ``best/``; ``last/`` holds the
raw weights and the average, to resume.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from c2kd.checkpoint import (
    BEST_AVERAGE_DIR,
    BEST_DIR,
    HISTORY_FILE,
    LAST_DIR,
    TENSORBOARD_DIR,
    load_resume_state,
    load_weights,
)
from c2kd.errors import TrainingDivergedError
from c2kd.io import write_json
from c2kd.progress import progress_bar
from c2kd.train.averaging import WeightAverage

#: ``save(directory, model, metrics, resume_state)`` writes one checkpoint folder atomically; ``resume_state``
#: (optimizer, scheduler, RNG) is given for ``last/`` only, and must come back from
#: :func:`c2kd.checkpoint.load_resume_state` for the run to resume
SaveCheckpoint = Callable[[Path, nn.Module, dict[str, float] | None, dict[str, Any] | None], object]


class RunSettings(Protocol):
    """What the trainer reads of a run's settings: a ``TrainConfig`` is one, :class:`Loop` one for a trainer
    used on its own."""

    @property
    def epochs(self) -> int: ...
    @property
    def precision(self) -> str: ...
    @property
    def log_every(self) -> int: ...
    @property
    def save_every_steps(self) -> int | None: ...
    @property
    def progress(self) -> bool: ...
    @property
    def tensorboard(self) -> bool: ...


class StepSettings(Protocol):
    """What the trainer reads of the optimisation settings (an ``OptimConfig`` is one)."""

    @property
    def grad_clip(self) -> float | None: ...
    @property
    def average(self) -> float | None: ...


@dataclass(frozen=True)
class Loop:
    """Run and step settings for a trainer used on its own (defaults: those of ``TrainConfig``).

    ``average``: decay of the moving average of the weights that is validated and kept (None: the weights).
    """

    epochs: int = 1
    precision: str = "auto"
    log_every: int = 10
    save_every_steps: int | None = None
    progress: bool = True
    tensorboard: bool = True
    grad_clip: float | None = None
    average: float | None = None


@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already done
    best_metric: float = -math.inf
    best_epoch: int = -1  # 0: the starting point
    #: the best monitored value and its epoch with the floor ignored (``best-average/``; -1: not tracked, as in
    #: runs saved before it was)
    best_average_metric: float = -math.inf
    best_average_epoch: int = -1
    #: floor metrics below their start at the best-average epoch, when that epoch was kept out of ``best/``
    blocked: list[str] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    #: validation metrics of the model before any training step
    start_metrics: dict[str, float] | None = None


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Mixed precision only on CUDA: fp16 or bf16 ("auto": bf16 where supported, else fp16); fp32 on CPU."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Fit a model; ``save`` writes its checkpoints (see :data:`SaveCheckpoint`; without it none are written)."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[Any], dict[str, Tensor]], loader,
                 optimizer: torch.optim.Optimizer, scheduler, out_dir: str | Path, device: torch.device,
                 run: RunSettings, step: StepSettings | None = None,
                 evaluate: Callable[[nn.Module], dict[str, float]] | None = None, monitor: str = "loss",
                 save: SaveCheckpoint | None = None, to_device: Callable[[Any, torch.device], Any] | None = None,
                 is_main: bool = True, floor: Sequence[str] = ()):
        step = step if step is not None else Loop()
        self.model, self.loss_fn, self.loader = model, loss_fn, loader
        self.optimizer, self.scheduler = optimizer, scheduler
        self.out_dir, self.epochs, self.device = Path(out_dir), run.epochs, device
        self.evaluate, self.monitor, self.save = evaluate, monitor, save
        self.grad_clip, self.log_every, self.save_every_steps = step.grad_clip, run.log_every, run.save_every_steps
        self.progress, self.is_main = run.progress, is_main
        #: validation metrics that may not fall below their value at the start for an epoch to become best/
        self.floor = tuple(floor)
        self.to_device = to_device or (lambda batch, dev: batch.to(dev))
        self.amp_dtype = autocast_dtype(device, run.precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.state = TrainerState()
        #: the moving average of the weights that is validated and kept as best/ (None: the weights themselves)
        self.average = WeightAverage(model, step.average) if step.average is not None else None
        self._tb = None
        if run.tensorboard and is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out_dir / TENSORBOARD_DIR))

    # -- checkpoints -------------------------------------------------------------------------------------
    def _write_checkpoint(self, name: str, metrics: dict | None, with_state: bool) -> None:
        if not self.is_main or self.save is None:
            return
        state = None
        if with_state:
            state = {
                "trainer": asdict(self.state),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
                "average": self.average.state_dict() if self.average is not None else None,
            }
        self.save(self.out_dir / name, self.model, metrics, state)

    def resume(self) -> bool:
        """Load ``last/`` if it holds a resume state. Returns whether a run was resumed."""
        last = self.out_dir / LAST_DIR
        saved = load_resume_state(last)
        if saved is None:
            return False
        self.model.load_state_dict(load_weights(last), strict=True)
        self.state = TrainerState(**saved["trainer"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        if self.average is not None:
            if saved.get("average") is None:
                raise ValueError(f"{last} was saved without a weight average; continue it without optim.average")
            self.average.load_state_dict(saved["average"])
        torch.set_rng_state(saved["rng"]["torch"])
        np.random.set_state(saved["rng"]["numpy"])
        random.setstate(saved["rng"]["python"])
        return True

    # -- loop --------------------------------------------------------------------------------------------
    def _step(self, batch) -> dict[str, float]:
        batch = self.to_device(batch, self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            terms = self.loss_fn(batch)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"loss became {loss.item()} at step {self.state.step}: lower the learning rate, or check the "
                "features for NaN/inf (`c2kd data check`)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update()
        return {k: float(v.detach()) for k, v in terms.items()}

    def _log(self, values: dict[str, float], step: int, prefix: str) -> None:
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(f"{prefix}/{key}", value, step)

    def _validate_start(self) -> None:
        """Validate the untrained model and keep it as ``best/`` (epoch 0) until an epoch beats it."""
        if self.evaluate is None or self.state.start_metrics is not None or self.state.step > 0:
            return
        metrics = self.evaluate(self.model)
        if self.monitor not in metrics:
            raise KeyError(f"monitored metric {self.monitor!r} is not among the validation metrics: "
                           f"{sorted(metrics)[:12]}...")
        self.state.start_metrics = metrics
        self._log(metrics, 0, "val")
        self.state.best_metric, self.state.best_epoch = float(metrics[self.monitor]), 0
        self.state.best_average_metric, self.state.best_average_epoch = float(metrics[self.monitor]), 0
        self._write_checkpoint(BEST_DIR, metrics, with_state=False)
        self._write_checkpoint(BEST_AVERAGE_DIR, metrics, with_state=False)

    def _below_floor(self, metrics: dict[str, float] | None) -> list[str]:
        """The ``floor`` metrics below their value at the start (none without a start)."""
        start = self.state.start_metrics
        if not self.floor or metrics is None or start is None:
            return []
        return [name for name in self.floor if name in start and metrics[name] < start[name]]

    def _keep_best(self, monitored: float | None, metrics: dict[str, float] | None) -> None:
        """Write ``best-average/`` when ``monitored`` beats every earlier epoch, ``best/`` when it does so with no
        floor metric below the start; record the floor metrics that kept it out of ``best/``."""
        if monitored is None:
            return
        epoch = self.state.epoch
        if monitored > self.state.best_metric and not self._below_floor(metrics):
            self.state.best_metric, self.state.best_epoch = float(monitored), epoch
            self._write_checkpoint(BEST_DIR, metrics, with_state=False)
        if monitored > self.state.best_average_metric:
            self.state.best_average_metric, self.state.best_average_epoch = float(monitored), epoch
            self._write_checkpoint(BEST_AVERAGE_DIR, metrics, with_state=False)
        self.state.blocked = ([] if self.state.best_average_epoch == self.state.best_epoch
                              else self._below_floor(metrics) if self.state.best_average_epoch == epoch
                              else self.state.blocked)

    def _validated_weights(self):
        """A context holding the weights that are validated and saved as best/ in the model."""
        return self.average.applied() if self.average is not None else contextlib.nullcontext()

    def fit(self) -> TrainerState:
        self.model.to(self.device)
        self.resume()
        self._validate_start()
        sampler: Any = getattr(self.loader, "batch_sampler", None)
        while self.state.epoch < self.epochs:
            epoch = self.state.epoch
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch, self.state.batch_in_epoch)
            dataset: Any = getattr(self.loader, "dataset", None)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            self.model.train()
            sums: dict[str, float] = {}
            start, count = time.perf_counter(), 0
            bar = progress_bar(self.loader, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch",
                               initial=self.state.batch_in_epoch, total=self.state.batch_in_epoch + len(self.loader),
                               disable=not (self.progress and self.is_main), dynamic_ncols=True)
            for batch in bar:
                values = self._step(batch)
                self.state.step += 1
                self.state.batch_in_epoch += 1
                count += 1
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                if self.state.step % self.log_every == 0:
                    self._log(values, self.state.step, "train")
                    self._log({"lr": self.optimizer.param_groups[0]["lr"]}, self.state.step, "train")
                bar.set_postfix(loss=f"{values['loss']:.3f}")
                if self.save_every_steps and self.state.step % self.save_every_steps == 0:
                    self._write_checkpoint(LAST_DIR, None, with_state=True)
            if self.scheduler is not None:
                self.scheduler.step()
            summary = {f"train/{k}": v / max(count, 1) for k, v in sums.items() if "/" not in k}
            summary["train/seconds"] = time.perf_counter() - start
            metrics = None
            with self._validated_weights():
                if self.evaluate is not None:
                    metrics = self.evaluate(self.model)
                    summary.update({f"val/{k}": v for k, v in metrics.items()})
                    self._log(metrics, epoch + 1, "val")
                self.state.epoch += 1
                self.state.batch_in_epoch = 0
                summary["epoch"] = float(self.state.epoch)
                self.state.history.append(summary)
                if metrics is not None and self.monitor not in metrics:
                    raise KeyError(f"monitored metric {self.monitor!r} is not among the validation metrics: "
                                   f"{sorted(metrics)[:12]}...")
                monitored = (metrics or {}).get(self.monitor)
                if monitored is None and self.evaluate is None:
                    monitored = -summary.get("train/loss", 0.0)  # no validation split: the lowest training loss
                self._keep_best(monitored, metrics)
            self._write_checkpoint(LAST_DIR, metrics, with_state=True)
            if self.is_main:
                write_json(self.out_dir / HISTORY_FILE, self.state.history)
        if self._tb is not None:
            self._tb.flush()
        return self.state
