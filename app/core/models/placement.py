"""Where a model runs: the RUN_MODE policy and the memory estimate behind ``auto``.

- ``switch`` (the seed's approach A): every model on ``LLAMA_PORT``; loading one unloads
  the others.
- ``parallel`` (approach B): each profile on its own port; both may stay loaded.
- ``auto``: parallel when the free GPU memory (RAM when there is no GPU information or
  the model runs on the CPU) plus what our loaded models hold covers both models' need;
  switch otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import psutil

from app.config import Settings
from app.core.models.catalogue import CatalogueEntry
from app.core.models.profiles import ModelProfile

MemoryProbe = Callable[[], int | None]
"""Free GPU memory in bytes, or None when it is not known (no GPU, no driver)."""

SAFETY_FACTOR = 1.15
OVERHEAD_BYTES = 512 * 1024**2  # compute buffers, CUDA/Vulkan context
Mode = Literal["switch", "parallel"]


def no_gpu() -> int | None:
    return None


def ram_available() -> int:
    return int(psutil.virtual_memory().available)


def estimate_need(entry: CatalogueEntry, ctx_size: int) -> int:
    """Bytes a model needs loaded: file(s) + KV cache at ``ctx_size``, with a margin."""
    info = entry.info
    ctx = ctx_size or (info.context_length if info else 0) or 4096
    kv = info.kv_cache_bytes(ctx) if info else 0
    return int((entry.size_bytes + kv) * SAFETY_FACTOR) + OVERHEAD_BYTES


@dataclass(frozen=True)
class Decision:
    mode: Mode
    reason: str


def _gb(n: int) -> str:
    return f"{n / 1024**3:.1f} GB"


class Placement:
    def __init__(self, settings: Settings, *, gpu_free: MemoryProbe | None = None) -> None:
        self._settings = settings
        self._gpu_free = gpu_free or no_gpu

    def free_memory(self) -> tuple[int, str]:
        """Free bytes and what they are (GPU memory or RAM)."""
        if self._settings.LLAMA_GPU_LAYERS != 0:
            free = self._gpu_free()
            if free is not None:
                return free, "free GPU memory"
        return ram_available(), "available RAM"

    def decide(
        self,
        entries: Iterable[CatalogueEntry],
        held: Iterable[tuple[CatalogueEntry, int]],
        free: tuple[int, str] | None = None,
    ) -> Decision:
        """The mode for the next load. ``held``: (entry, ctx) of the models loaded now;
        ``free``: ``free_memory()``'s answer when the caller probed it off the loop."""
        mode = self._settings.RUN_MODE
        if mode != "auto":
            return Decision(mode, f"RUN_MODE={mode}")
        entries = list(entries)
        if len(entries) < 2:
            return Decision("parallel", "auto: only one model is configured")
        ctx = self._settings.LLAMA_CTX_SIZE
        need = sum(estimate_need(e, ctx) for e in entries)
        free, what = free if free is not None else self.free_memory()
        ours = sum(estimate_need(e, c) for e, c in held)
        if free + ours >= need:
            mode_ = "parallel"
            verdict = "covers"
        else:
            mode_ = "switch"
            verdict = "does not cover"
        return Decision(
            mode_,  # type: ignore[arg-type]
            f"auto: {_gb(free)} {what} + {_gb(ours)} held by our models {verdict} "
            f"the {_gb(need)} both models need",
        )

    def port_for(self, profile: ModelProfile, mode: Mode) -> int:
        return self._settings.LLAMA_PORT if mode == "switch" else profile.port
