"""What a GPU probe reports: devices, per-process GPU memory, host RAM and server RSS."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.core.units import gb

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    total_mib: float
    used_mib: float
    uuid: str = ""


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_mib: float | None  # None when the driver does not tell (e.g. Windows WDDM)
    device: int | None = None


@dataclass(frozen=True)
class GpuSnapshot:
    """One probe's answer. ``source`` is "nvml", "nvidia-smi", "rocm-smi", "macos" or "none"."""

    source: str
    devices: tuple[GpuDevice, ...] = ()
    processes: tuple[GpuProcess, ...] = ()
    host_total_mib: float = 0.0
    host_used_mib: float = 0.0
    rss_mib: dict[int, float] = field(default_factory=dict)
    note: str = ""

    @property
    def has_gpu(self) -> bool:
        return bool(self.devices) and self.source != "none"

    def gpu_mib_of(self, pid: int) -> float | None:
        """GPU memory the process holds over all devices; None when not reported."""
        found = [p.used_mib for p in self.processes if p.pid == pid and p.used_mib is not None]
        return sum(found) if found else None

    @property
    def used_mib(self) -> float:
        return sum(d.used_mib for d in self.devices)

    @property
    def total_mib(self) -> float:
        return sum(d.total_mib for d in self.devices)

    def vram_text(self) -> str:
        """ "VRAM 15.2 / 24 GB" (or the host RAM when there is no GPU)."""
        if self.has_gpu:
            label = "Memory" if self.source == "macos" else "VRAM"
            return f"{label} {gb(self.used_mib)} / {gb(self.total_mib)} GB"
        if self.host_total_mib:
            return f"RAM {gb(self.host_used_mib)} / {gb(self.host_total_mib)} GB (no GPU found)"
        return "no GPU found"


GpuProbe = Callable[[Sequence[int]], GpuSnapshot]
"""The one GPU probe (``GpuProber.probe``): the GPUs, and the memory of the given PIDs.
It blocks (it may run ``nvidia-smi``): call it off the event loop."""
