"""GPU probe parsers on recorded outputs of nvidia-smi, rocm-smi and llama-server logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.gpu.server_memory import (
    is_host_buffer,
    parse_server_memory,
    read_server_memory,
)
from app.core.gpu.smi import (
    ProbeOutputError,
    parse_nvidia_smi_apps,
    parse_nvidia_smi_gpus,
    parse_rocm_smi,
)
from app.core.gpu.snapshot import GpuSnapshot, gb
from app.core.servers.server_log import last_start_section

DATA = Path(__file__).parents[1] / "data"


def test_nvidia_smi_gpus_and_apps() -> None:
    gpus = parse_nvidia_smi_gpus((DATA / "nvidia-smi-gpus.csv").read_text())
    assert [(g.index, g.name, g.used_mib, g.total_mib) for g in gpus] == [
        (0, "NVIDIA GeForce RTX 3090", 15565.0, 24576.0),
        (1, "NVIDIA GeForce RTX 3060", 812.0, 12288.0),
    ]
    apps = parse_nvidia_smi_apps((DATA / "nvidia-smi-apps.csv").read_text(), gpus)
    assert [(a.pid, a.used_mib, a.device) for a in apps] == [
        (48211, 9876.0, 0),
        (48305, 5432.0, 0),
        (1733, None, 1),  # "[N/A]": the driver does not say
    ]
    snap = GpuSnapshot("nvidia-smi", tuple(gpus), tuple(apps))
    assert snap.gpu_mib_of(48211) == 9876.0
    assert snap.gpu_mib_of(1733) is None
    assert snap.vram_text() == "VRAM 16 / 36 GB"  # 15.99 GB


def test_nvidia_smi_wddm_and_empty_apps() -> None:
    gpus = parse_nvidia_smi_gpus((DATA / "nvidia-smi-gpus-wddm.csv").read_text())
    assert gpus[0].used_mib == 0.0 and gpus[0].total_mib == 24564.0
    assert parse_nvidia_smi_apps("", gpus) == []
    assert parse_nvidia_smi_apps("No running processes found\n", gpus) == []


def test_nvidia_smi_garbage_is_an_error() -> None:
    with pytest.raises(ProbeOutputError):
        parse_nvidia_smi_gpus("NVIDIA-SMI has failed because it couldn't communicate\n")
    with pytest.raises(ProbeOutputError):
        parse_nvidia_smi_apps("pid, used_memory\n", [])


def test_rocm_smi_json() -> None:
    devices, procs = parse_rocm_smi((DATA / "rocm-smi.json").read_text())
    assert len(devices) == 1
    d = devices[0]
    assert d.name == "Radeon RX 7900 XTX"
    assert round(d.total_mib) == 24560 and round(d.used_mib) == 16384
    assert {p.pid: round(p.used_mib) for p in procs} == {48211: 9216, 48305: 5632}
    with pytest.raises(ProbeOutputError):
        parse_rocm_smi("WARNING: No AMD GPUs specified")


def test_cuda_log_gives_the_model_kv_compute_split() -> None:
    mem = read_server_memory(DATA / "llama-server-cuda.log")
    # only the latest start counts (the earlier 3999 MiB model is gone)
    assert mem.model_mib == pytest.approx(4403.49)
    assert mem.kv_mib == pytest.approx(1024.0)
    assert mem.compute_mib == pytest.approx(560.0)
    assert mem.host_mib == pytest.approx(281.81 + 0.49 + 24.01)
    assert (mem.layers_offloaded, mem.layers_total) == (33, 33)
    assert mem.devices == {"CUDA0": pytest.approx(5987.49)}
    assert mem.text() == (
        "GPU 5987 MiB: model 4403, KV 1024, compute 560; host 306 MiB; 33/33 layers on GPU"
    )
    # the split over every buffer, device and host (the models window's memory column)
    assert mem.kinds["model"] == pytest.approx(4403.49 + 281.81)
    assert mem.split_text() == "model 4685 · KV 1024 · compute 584 MiB"


def test_partial_offload_with_mmproj() -> None:
    mem = parse_server_memory((DATA / "llama-server-vision-partial.log").read_text())
    assert (mem.layers_offloaded, mem.layers_total) == (20, 29)
    assert mem.model_mib == pytest.approx(2880.12)
    assert mem.kv_mib == pytest.approx(320.0)
    assert mem.compute_mib == pytest.approx(730.36 + 198.93)
    assert mem.host_mib == pytest.approx(1773.54 + 0.58 + 128.0 + 23.01 + 14.57)


def test_real_cpu_log_is_all_host_memory() -> None:
    """Recorded from the real llama-server (CPU only) loading the tiny test model."""
    mem = parse_server_memory((DATA / "llama-server-cpu-tiny.log").read_text())
    assert mem.devices == {}
    assert mem.device_mib == 0
    assert mem.host_mib == pytest.approx(0.36 + 0.0 + 0.25 + 1.51)
    assert (mem.layers_offloaded, mem.layers_total) == (3, 3)
    assert mem.found
    assert mem.split_text() == "model 0.4 · KV 0.2 · compute 1.5 MiB"  # in host memory


def test_host_buffer_names() -> None:
    for name in ("CPU", "CPU_Mapped", "CPU_REPACK", "CUDA_Host", "ROCm_Host", "BLAS"):
        assert is_host_buffer(name), name
    for name in ("CUDA0", "ROCm1", "Vulkan0", "Metal", "MTL0"):
        assert not is_host_buffer(name), name


def test_last_start_section_and_missing_file(tmp_path) -> None:
    data = b"a\n===== x familylog-tray start: one\nb\n===== y familylog-tray start: two\nc\n"
    assert last_start_section(data) == b"familylog-tray start: two\nc\n"
    assert last_start_section(b"no header\n") == b"no header\n"
    mem = read_server_memory(tmp_path / "nope.log")
    assert not mem.found and mem.text() == ""


def test_gb_formatting() -> None:
    assert gb(24576) == "24"
    assert gb(15565) == "15.2"
    assert gb(512) == "0.5"
