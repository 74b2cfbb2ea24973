"""Choosing the GPU source at run time: NVML (stub module), nvidia-smi and rocm-smi (recorded
outputs), macOS, and the "no GPU found" fallback with the real host's RAM and RSS."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from app.core.gpu.probe import GpuProber, ProbeUnavailable

DATA = Path(__file__).parents[1] / "data"
MIB = 1024 * 1024


def fake_nvml(*, fail_init: bool = False, procs=None) -> types.ModuleType:
    """A stand-in for ``pynvml`` with the calls the prober makes (no GPU exists here)."""
    m = types.ModuleType("pynvml")
    m.calls = []

    def init():
        m.calls.append("init")
        if fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    m.nvmlInit = init
    m.nvmlShutdown = lambda: m.calls.append("shutdown")
    m.nvmlDeviceGetCount = lambda: 1
    m.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    m.nvmlDeviceGetName = lambda h: b"NVIDIA GeForce RTX 3090"  # old versions return bytes
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        total=24576 * MIB, used=15565 * MIB, free=9011 * MIB
    )
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: (
        procs
        or [
            types.SimpleNamespace(pid=48211, usedGpuMemory=9876 * MIB),
            types.SimpleNamespace(pid=48305, usedGpuMemory=None),
        ]
    )
    return m


def no_tools(_name: str) -> None:
    return None


def recorded(outputs: dict[str, str]):
    """A runner that answers like the real tool did (outputs under tests/data)."""
    calls = []

    def run(cmd: list[str]) -> str:
        calls.append(cmd)
        for key, text in outputs.items():
            if any(key in part for part in cmd):
                return text
        raise ProbeUnavailable(f"unexpected command {cmd}")

    run.calls = calls
    return run


def test_nvml_first_when_it_works() -> None:
    nv = fake_nvml()
    prober = GpuProber(which=no_tools, nvml_loader=lambda: nv)
    snap = prober.probe([os.getpid()])
    assert snap.source == "nvml" and prober.source == "nvml"
    (dev,) = snap.devices
    assert dev.name == "NVIDIA GeForce RTX 3090" and dev.total_mib == 24576
    assert snap.gpu_mib_of(48211) == 9876
    assert snap.gpu_mib_of(48305) is None
    assert snap.rss_mib[os.getpid()] > 1
    prober.probe([])
    assert nv.calls == ["init"]  # initialised once, kept
    prober.close()
    assert nv.calls == ["init", "shutdown"]


def test_nvidia_smi_when_nvml_is_missing() -> None:
    def missing():
        raise ProbeUnavailable("nvidia-ml-py is not installed")

    run = recorded(
        {
            "--query-gpu": (DATA / "nvidia-smi-gpus.csv").read_text(),
            "--query-compute-apps": (DATA / "nvidia-smi-apps.csv").read_text(),
        }
    )
    prober = GpuProber(
        which=lambda n: "/usr/bin/nvidia-smi" if n == "nvidia-smi" else None,
        run=run,
        nvml_loader=missing,
    )
    snap = prober.probe([])
    assert snap.source == "nvidia-smi"
    assert [d.name for d in snap.devices] == ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3060"]
    assert snap.gpu_mib_of(48305) == 5432
    assert run.calls[0][0] == "/usr/bin/nvidia-smi"
    assert "--format=csv,noheader,nounits" in run.calls[0]


def test_nvml_init_failure_falls_through_to_rocm_smi() -> None:
    run = recorded({"--showmeminfo": (DATA / "rocm-smi.json").read_text()})
    prober = GpuProber(
        which=lambda n: "/opt/rocm/bin/rocm-smi" if n == "rocm-smi" else None,
        run=run,
        nvml_loader=lambda: fake_nvml(fail_init=True),
    )
    snap = prober.probe([])
    assert snap.source == "rocm-smi"
    assert snap.devices[0].name == "Radeon RX 7900 XTX"
    assert "--json" in run.calls[0]


def test_macos_unified_memory_uses_rss_as_the_share() -> None:
    def missing():
        raise ProbeUnavailable("no")

    prober = GpuProber(which=no_tools, nvml_loader=missing, platform="darwin")
    snap = prober.probe([os.getpid()])
    assert snap.source == "macos"
    assert snap.devices[0].name == "Apple GPU (unified memory)"
    assert snap.gpu_mib_of(os.getpid()) == pytest.approx(snap.rss_mib[os.getpid()])
    assert snap.vram_text().startswith("Memory ")


def test_no_gpu_found_reports_host_ram_and_rss() -> None:
    def missing():
        raise ProbeUnavailable("no")

    prober = GpuProber(which=no_tools, nvml_loader=missing, platform="linux")
    snap = prober.probe([os.getpid(), 999_999_999])
    assert snap.source == "none" and not snap.has_gpu
    assert snap.note == "no GPU found"
    assert snap.host_total_mib > snap.host_used_mib > 0
    assert list(snap.rss_mib) == [os.getpid()]  # a gone PID is skipped
    assert snap.vram_text().endswith("(no GPU found)")


def test_a_source_that_stops_working_is_dropped() -> None:
    outputs = {"--query-gpu": (DATA / "nvidia-smi-gpus.csv").read_text(), "--query-compute": ""}
    run = recorded(outputs)

    def missing():
        raise ProbeUnavailable("no")

    prober = GpuProber(which=lambda n: f"/usr/bin/{n}", run=run, nvml_loader=missing)
    assert prober.probe([]).source == "nvidia-smi"
    outputs.clear()  # the driver went away
    assert prober.probe([]).source == "none"
    assert prober.source is None
