"""GpuMonitor with the real manager and the real tiny llama-server (no Qt)."""

from __future__ import annotations

import asyncio

from app.core.gpu.monitor import GpuMonitor
from app.core.gpu.probe import GpuProber, ProbeUnavailable
from app.paths import AppPaths
from app.settings_load import load_settings
from tests.support.app import load_role, make_core
from tests.support.wait import until


def cpu_only_prober() -> GpuProber:
    def missing():
        raise ProbeUnavailable("no NVML here")

    return GpuProber(which=lambda _n: None, nvml_loader=missing, platform="linux")


async def test_monitor_reads_rss_and_the_log_split(tiny_model, llama_server_bin, port) -> None:
    paths = AppPaths.resolve().ensure()
    settings = load_settings(
        paths,
        LLAMA_SERVER_PATH=llama_server_bin,
        LLM_MODEL_GGUF=str(tiny_model),
        LLAMA_LLM_PORT=port,
        LLAMA_CTX_SIZE=512,
    )
    core = make_core(settings, None, paths=paths)  # no services
    monitor = GpuMonitor(core.manager, cpu_only_prober(), fast=0.05, slow=3600)
    seen = []
    monitor.subscribe(seen.append)
    await core.start()
    try:
        status = await load_role(core, "llm")
        snap = await monitor.refresh()
        assert snap.source == "none"
        assert snap.rss_mib[status.pid] > 1
        mem = monitor.server_memory[status.pid]
        # the app starts llama-server with -lv 4, so its log tells its buffers
        assert mem.found and mem.layers_total == 3 and mem.host_mib > 0
        assert seen[-1] is snap
        await core.lifecycle.unload_port(port)
        await monitor.refresh()
        assert status.pid not in monitor.server_memory
    finally:
        await monitor.stop()
        await core.stop()


async def test_fast_probing_only_while_watched(app_home) -> None:
    paths = AppPaths.resolve().ensure()
    core = make_core(load_settings(paths), None, paths=paths)
    monitor = GpuMonitor(core.manager, cpu_only_prober(), fast=0.02, slow=3600)
    await monitor.start()
    try:
        await until(lambda: monitor.probes == 1)
        monitor.set_fast(True)  # a window opened: probe now, then often
        await until(lambda: monitor.probes >= 4)
        monitor.set_fast(False)
        await asyncio.sleep(0)  # let a probe already under way finish
        await until(lambda: monitor.interval == 3600)
        settled = monitor.probes
        await asyncio.sleep(0.2)  # ten fast intervals: a slow monitor must not probe
        assert monitor.probes <= settled + 1
    finally:
        await monitor.stop()
