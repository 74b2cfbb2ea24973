"""The free memory placement weighs a load against: the GPU's, else the host's RAM."""

from __future__ import annotations

from collections.abc import Callable

import psutil

from app.config import Settings
from app.core.lifecycle.placement import Free

GpuFree = Callable[[], int | None]
"""Free GPU memory in bytes, or None when it is not known (no GPU, no driver)."""


def ram_available() -> int:
    return int(psutil.virtual_memory().available)


def free_memory(settings: Settings, gpu_free: GpuFree | None) -> Free:
    """Free GPU memory when the models run on a GPU the probes see; available RAM else."""
    if settings.LLAMA_GPU_LAYERS != 0 and gpu_free is not None:
        free = gpu_free()
        if free is not None:
            return Free(free, "free GPU memory")
    return Free(ram_available(), "available RAM")
