"""VRAM settle: the next model starts only once the driver lists the old server no more."""

from __future__ import annotations

from app.core.gpu.snapshot import GpuDevice, GpuProcess, GpuSnapshot
from app.core.lifecycle.settle import released, settle
from app.core.servers.states import ServerState
from tests.support.app import make_core, settings_for

GPU = (GpuDevice(0, "NVIDIA H200", 143771.0, 2000.0),)


def snap(*pids: int) -> GpuSnapshot:
    return GpuSnapshot("nvml", GPU, tuple(GpuProcess(p, 1500.0, 0) for p in pids))


def test_released() -> None:
    assert released(GpuSnapshot("none"), {1})  # no GPU: nothing to wait for
    assert released(snap(2, 3), {1})
    assert not released(snap(1, 2), {1})


async def test_settle_waits_until_the_process_is_gone() -> None:
    answers = [snap(7), snap(7), snap(7), snap()]
    calls = []

    def probe(pids) -> GpuSnapshot:
        assert list(pids) == [7]  # the PIDs it waits for
        calls.append(1)
        return answers[min(len(calls) - 1, len(answers) - 1)]

    took = await settle(probe, {7}, timeout=10)
    assert took is not None and len(calls) == 4


async def test_settle_gives_up_after_its_timeout() -> None:
    assert await settle(lambda pids: snap(7), {7}, timeout=0.05) is None
    assert await settle(lambda pids: snap(7), set(), timeout=5) == 0.0


class FakeGpu:
    """A GPU whose driver keeps listing a stopped server for a few probes."""

    def __init__(self, linger: int) -> None:
        self.linger = linger
        self.gone: set[int] = set()
        self.order: list[str] = []
        self.core = None

    def free_bytes(self) -> int:
        return 100 * 1024**3

    def probe(self, pids=()) -> GpuSnapshot:
        live = {st.pid for st in self.core.manager.statuses().values() if st.pid}
        for pid in list(self.gone):
            if self.linger <= 0:
                self.gone.discard(pid)
        self.linger -= 1
        self.order.append("probe")
        return snap(*(live | self.gone))


async def test_a_switch_waits_for_the_old_servers_memory(
    llama_server_bin, tiny_model, tiny_model_b
):
    gpu = FakeGpu(linger=3)
    settings = settings_for(
        llama_server_bin,
        RUN_MODE="switch",
        VISION_MODEL_GGUF=str(tiny_model),
        LLM_MODEL_GGUF=str(tiny_model_b),
    )
    core = make_core(settings, policy=None, gpu=gpu)
    gpu.core = core
    core.manager.subscribe(
        lambda e: (
            gpu.gone.add(e.status.pid) if e.new is ServerState.STOPPING and e.status.pid else None,
            gpu.order.append("start") if e.new is ServerState.STARTING else None,
        )
    )
    await core.start()
    try:
        await core.lifecycle.ensure("tiny-llama-Q8_0")
        gpu.order.clear()
        await core.lifecycle.ensure("tiny-other-F32")
        # the old server's memory was reported for 3 more probes; the new one started after
        assert gpu.order.index("start") >= 4, gpu.order
        assert [i.key for i in core.lifecycle.loaded()] == ["tiny-other-F32"]
    finally:
        await core.stop()
