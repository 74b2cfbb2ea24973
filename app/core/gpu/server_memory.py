"""A llama-server's own account of its memory, read from its log (``-lv 4``).

Lines look like ``load_tensors:        CUDA0 model buffer size =  4403.49 MiB``,
``llama_kv_cache:      CUDA0 KV buffer size =  1024.00 MiB``,
``sched_reserve:       CUDA0 compute buffer size =   560.00 MiB`` and
``load_tensors: offloaded 33/33 layers to GPU``. Buffers named ``CPU*``, ``*_Host`` or
``BLAS`` live in host memory; the rest are on a device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from app.core.servers.server_log import last_start_section

_BUFFER = re.compile(
    r"(?P<buf>[A-Za-z][\w.-]*)\s+(?P<kind>model|KV|compute|output|RS|recurrent)\s+buffer size"
    r"\s*=\s*(?P<mib>[\d.]+)\s*MiB"
)
_OFFLOADED = re.compile(r"offloaded (?P<n>\d+)/(?P<total>\d+) layers to GPU")
_CLIP = re.compile(r"clip_\w+:\s+(?P<buf>[A-Za-z][\w.-]*)\s+total size\s*=\s*(?P<mib>[\d.]+)\s*MiB")


def is_host_buffer(name: str) -> bool:
    return name.upper().startswith("CPU") or name.endswith("_Host") or name.upper() == "BLAS"


@dataclass
class ServerMemory:
    """MiB per part; ``device_*`` on the GPU(s), ``host`` the sum of host buffers."""

    model_mib: float = 0.0
    kv_mib: float = 0.0
    compute_mib: float = 0.0
    other_mib: float = 0.0  # output, recurrent state, mmproj
    host_mib: float = 0.0
    layers_offloaded: int | None = None
    layers_total: int | None = None
    devices: dict[str, float] = field(default_factory=dict)
    # MiB per kind ("model", "KV", "compute", ...) over device and host buffers together
    kinds: dict[str, float] = field(default_factory=dict)

    @property
    def device_mib(self) -> float:
        return self.model_mib + self.kv_mib + self.compute_mib + self.other_mib

    @property
    def found(self) -> bool:
        return bool(self.devices) or self.host_mib > 0 or self.layers_total is not None

    def text(self) -> str:
        """ "GPU 5987 MiB: model 4403, KV 1024, compute 560; host 282 MiB; 33/33 layers" """
        if not self.found:
            return ""
        parts = []
        if self.device_mib:
            split = (
                f"model {self.model_mib:.0f}, KV {self.kv_mib:.0f}, compute {self.compute_mib:.0f}"
            )
            parts.append(f"GPU {self.device_mib:.0f} MiB: {split}")
        if self.host_mib:
            parts.append(f"host {self.host_mib:.0f} MiB")
        if self.devices and self.layers_total is not None:
            parts.append(f"{self.layers_offloaded}/{self.layers_total} layers on GPU")
        elif not self.devices:
            parts.append("no GPU buffers")
        return "; ".join(parts)

    def split_text(self) -> str:
        """ "model 4403 · KV 1024 · compute 560 MiB" over every buffer, device or host."""
        parts = [
            f"{kind} {_mib(self.kinds[kind])}"
            for kind in ("model", "KV", "compute")
            if self.kinds.get(kind)
        ]
        return " · ".join(parts) + " MiB" if parts else ""


def _mib(v: float) -> str:
    return f"{v:.1f}" if v < 10 else f"{v:.0f}"


def parse_server_memory(text: str) -> ServerMemory:
    """Sum the buffer lines of one start of llama-server."""
    mem = ServerMemory()
    for line in text.splitlines():
        m = _BUFFER.search(line)
        if m:
            name, kind, mib = m.group("buf"), m.group("kind"), float(m.group("mib"))
            mem.kinds[kind] = mem.kinds.get(kind, 0.0) + mib
            if is_host_buffer(name):
                mem.host_mib += mib
                continue
            mem.devices[name] = mem.devices.get(name, 0.0) + mib
            if kind == "model":
                mem.model_mib += mib
            elif kind == "KV":
                mem.kv_mib += mib
            elif kind == "compute":
                mem.compute_mib += mib
            else:
                mem.other_mib += mib
            continue
        m = _CLIP.search(line)
        if m:
            name, mib = m.group("buf"), float(m.group("mib"))
            if is_host_buffer(name):
                mem.host_mib += mib
            else:
                mem.devices[name] = mem.devices.get(name, 0.0) + mib
                mem.other_mib += mib
            continue
        m = _OFFLOADED.search(line)
        if m:
            mem.layers_offloaded, mem.layers_total = int(m.group("n")), int(m.group("total"))
    return mem


def read_server_memory(log_path: Path, max_bytes: int = 8 * 1024 * 1024) -> ServerMemory:
    """Parse the latest start in ``log_path``; blocking (call it in an executor)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ServerMemory()
    return parse_server_memory(last_start_section(data).decode("utf-8", errors="replace"))
