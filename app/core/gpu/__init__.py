"""GPU memory probes and llama-server memory accounting (Qt-free)."""

from app.core.gpu.probe import GpuProber
from app.core.gpu.server_memory import ServerMemory, read_server_memory
from app.core.gpu.snapshot import GpuDevice, GpuProcess, GpuSnapshot

__all__ = [
    "GpuDevice",
    "GpuProcess",
    "GpuProber",
    "GpuSnapshot",
    "ServerMemory",
    "read_server_memory",
]
