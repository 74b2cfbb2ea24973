"""Find the GPUs and their memory, trying sources in order and chosen at run time.

NVML (``nvidia-ml-py``, imported lazily) → ``nvidia-smi`` → ``rocm-smi`` → macOS unified
memory → "no GPU found". Every probe also reports host RAM and the RSS of the given PIDs.
All calls block: run ``GpuProber.probe`` in an executor, never on the UI thread.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from types import ModuleType

import psutil

from app.core.gpu.smi import (
    NVSMI_APPS_QUERY,
    NVSMI_GPU_QUERY,
    ROCM_ARGS,
    ProbeOutputError,
    parse_nvidia_smi_apps,
    parse_nvidia_smi_gpus,
    parse_rocm_smi,
)
from app.core.gpu.snapshot import MIB, GpuDevice, GpuProcess, GpuSnapshot

log = logging.getLogger(__name__)

Runner = Callable[[list[str]], str]
SOURCES = ("nvml", "nvidia-smi", "rocm-smi", "macos")


class ProbeUnavailable(Exception):
    """This source does not work here; try the next one."""


def run_tool(cmd: list[str], timeout: float = 5.0) -> str:
    """Run a probe tool and return its stdout; ProbeUnavailable when it fails."""
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ProbeUnavailable(f"{cmd[0]}: {e}") from None
    if done.returncode != 0:
        raise ProbeUnavailable(f"{cmd[0]} exited with {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _load_pynvml() -> ModuleType:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise ProbeUnavailable("nvidia-ml-py is not installed") from None


class GpuProber:
    """Probes GPU memory. Everything system-specific is injectable for tests."""

    def __init__(
        self,
        *,
        which: Callable[[str], str | None] = shutil.which,
        run: Runner = run_tool,
        nvml_loader: Callable[[], ModuleType] = _load_pynvml,
        platform: str = sys.platform,
    ) -> None:
        self._which = which
        self._run = run
        self._nvml_loader = nvml_loader
        self._platform = platform
        self._source: str | None = None  # the first source that worked, kept
        self._nvml: ModuleType | None = None

    @property
    def source(self) -> str | None:
        return self._source

    def probe(self, pids: Iterable[int] = ()) -> GpuSnapshot:
        pids = list(pids)
        order = [self._source] if self._source else list(SOURCES)
        for source in order:
            try:
                devices, processes = getattr(self, "_probe_" + source.replace("-", "_"))()
            except (ProbeUnavailable, ProbeOutputError) as e:
                log.debug("GPU source %s unavailable: %s", source, e)
                if self._source == source:  # it worked before: try everything again next time
                    self._source = None
                continue
            if devices:
                self._source = source
                return self._with_host(source, devices, processes, pids)
        return self._with_host("none", (), (), pids, note="no GPU found")

    def free_bytes(self) -> int | None:
        """Free GPU memory over all devices in bytes, or None when no GPU is found.
        Blocking (it may run nvidia-smi): call it from an executor."""
        snapshot = self.probe()
        if not snapshot.has_gpu:
            return None
        return int(sum(max(0.0, d.total_mib - d.used_mib) for d in snapshot.devices) * 2**20)

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None

    # ── Sources ───────────────────────────────────────────────────────────────
    def _probe_nvml(self) -> tuple[list[GpuDevice], list[GpuProcess]]:
        nv = self._nvml
        if nv is None:
            nv = self._nvml_loader()
            try:
                nv.nvmlInit()
            except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded...
                raise ProbeUnavailable(f"NVML: {e}") from None
            self._nvml = nv
        try:
            devices, processes = [], []
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                name = nv.nvmlDeviceGetName(h)
                if isinstance(name, bytes):
                    name = name.decode("utf-8", "replace")
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                devices.append(
                    GpuDevice(
                        index=i, name=name, total_mib=mem.total / MIB, used_mib=mem.used / MIB
                    )
                )
                for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                    used = getattr(p, "usedGpuMemory", None)
                    processes.append(
                        GpuProcess(
                            pid=p.pid, used_mib=None if used is None else used / MIB, device=i
                        )
                    )
        except Exception as e:
            self.close()
            raise ProbeUnavailable(f"NVML: {e}") from None
        return devices, processes

    def _probe_nvidia_smi(self) -> tuple[list[GpuDevice], list[GpuProcess]]:
        exe = self._which("nvidia-smi")
        if not exe:
            raise ProbeUnavailable("nvidia-smi not found")
        devices = parse_nvidia_smi_gpus(self._run([exe, *NVSMI_GPU_QUERY]))
        try:
            processes = parse_nvidia_smi_apps(self._run([exe, *NVSMI_APPS_QUERY]), devices)
        except (ProbeUnavailable, ProbeOutputError) as e:
            log.debug("nvidia-smi per-process query failed: %s", e)
            processes = []
        return devices, processes

    def _probe_rocm_smi(self) -> tuple[list[GpuDevice], list[GpuProcess]]:
        exe = self._which("rocm-smi")
        if not exe:
            raise ProbeUnavailable("rocm-smi not found")
        return parse_rocm_smi(self._run([exe, *ROCM_ARGS]))

    def _probe_macos(self) -> tuple[list[GpuDevice], list[GpuProcess]]:
        if self._platform != "darwin":
            raise ProbeUnavailable("not macOS")
        vm = psutil.virtual_memory()
        used = (vm.total - vm.available) / MIB
        return [GpuDevice(0, "Apple GPU (unified memory)", vm.total / MIB, used)], []

    # ── Host memory ───────────────────────────────────────────────────────────
    def _with_host(self, source, devices, processes, pids, note: str = "") -> GpuSnapshot:
        vm = psutil.virtual_memory()
        rss: dict[int, float] = {}
        for pid in pids:
            try:
                rss[pid] = psutil.Process(pid).memory_info().rss / MIB
            except psutil.Error:
                pass
        if source == "macos":  # unified memory: a server's share is its resident memory
            processes = [GpuProcess(pid, mib, 0) for pid, mib in rss.items()]
        return GpuSnapshot(
            source=source,
            devices=tuple(devices),
            processes=tuple(processes),
            host_total_mib=vm.total / MIB,
            host_used_mib=(vm.total - vm.available) / MIB,
            rss_mib=rss,
            note=note,
        )
