"""Parsers for ``nvidia-smi`` CSV and ``rocm-smi --json`` output (pure functions)."""

from __future__ import annotations

import json
import re

from app.core.gpu.snapshot import MIB, GpuDevice, GpuProcess

NVSMI_GPU_QUERY = [
    "--query-gpu=index,uuid,name,memory.used,memory.total",
    "--format=csv,noheader,nounits",
]
NVSMI_APPS_QUERY = [
    "--query-compute-apps=gpu_uuid,pid,used_memory",
    "--format=csv,noheader,nounits",
]
ROCM_ARGS = ["--showmeminfo", "vram", "--showproductname", "--showpids", "--json"]


class ProbeOutputError(ValueError):
    """A tool's output did not have the expected shape."""


def _number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def _csv_rows(text: str, width: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < width:
            raise ProbeOutputError(f"unexpected nvidia-smi line: {line!r}")
        if len(parts) > width:  # a name with commas: glue the middle back together
            extra = len(parts) - width
            parts = parts[:2] + [", ".join(parts[2 : 3 + extra])] + parts[3 + extra :]
        rows.append(parts)
    return rows


def parse_nvidia_smi_gpus(text: str) -> list[GpuDevice]:
    """``index, uuid, name, memory.used, memory.total`` rows (MiB, no units)."""
    out = []
    for idx, uuid, name, used, total in _csv_rows(text, 5):
        out.append(
            GpuDevice(
                index=int(idx),
                name=name,
                used_mib=_number(used) or 0.0,
                total_mib=_number(total) or 0.0,
                uuid=uuid,
            )
        )
    return out


def parse_nvidia_smi_apps(text: str, devices: list[GpuDevice]) -> list[GpuProcess]:
    """``gpu_uuid, pid, used_memory`` rows; "No running processes found" gives none."""
    by_uuid = {d.uuid: d.index for d in devices}
    out = []
    for line in text.splitlines():
        if not line.strip() or "No running" in line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[1].isdigit():
            raise ProbeOutputError(f"unexpected nvidia-smi line: {line!r}")
        uuid, pid, used = parts
        out.append(GpuProcess(pid=int(pid), used_mib=_number(used), device=by_uuid.get(uuid)))
    return out


def parse_rocm_smi(text: str) -> tuple[list[GpuDevice], list[GpuProcess]]:
    """``rocm-smi --showmeminfo vram --showproductname --showpids --json``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProbeOutputError(f"rocm-smi did not print JSON: {e}") from None
    if not isinstance(data, dict):
        raise ProbeOutputError("rocm-smi JSON is not an object")
    devices = []
    for key, card in data.items():
        m = re.fullmatch(r"card(\d+)", key)
        if not m or not isinstance(card, dict):
            continue
        total = card.get("VRAM Total Memory (B)")
        used = card.get("VRAM Total Used Memory (B)")
        if total is None or used is None:
            continue
        name = card.get("Card Series") or card.get("Card series") or card.get("Card Model")
        devices.append(
            GpuDevice(
                index=int(m.group(1)),
                name=str(name or f"AMD GPU {m.group(1)}"),
                total_mib=int(total) / MIB,
                used_mib=int(used) / MIB,
                uuid=str(card.get("Unique ID", "")),
            )
        )
    processes = []
    system = data.get("system")
    if isinstance(system, dict):
        for key, value in system.items():
            m = re.fullmatch(r"PID(\d+)", key)
            if not m or not isinstance(value, str):
                continue
            # "name, number of GPUs used, VRAM used (B), SDMA used, CU occupancy"
            fields = [f.strip() for f in value.split(",")]
            vram = _number(fields[2]) if len(fields) > 2 else None
            processes.append(
                GpuProcess(pid=int(m.group(1)), used_mib=None if vram is None else vram / MIB)
            )
    devices.sort(key=lambda d: d.index)
    return devices, processes
