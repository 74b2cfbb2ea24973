"""--autostart: wait for the tray, then load the "load at start" models (real server)."""

from __future__ import annotations

import pytest

from app.config import load_settings
from app.core.bootstrap import build_core
from app.core.servers.states import ServerState
from app.core.startup import autostart_sequence
from app.paths import AppPaths
from app.ui.systray_wait import wait_for_system_tray


@pytest.fixture
def core_for(llama_server_bin, tiny_model, port, monkeypatch):
    def make(load_at_start: bool):
        monkeypatch.setenv("LLAMA_SERVER_PATH", llama_server_bin)
        monkeypatch.setenv("LLM_MODEL_GGUF", str(tiny_model))
        monkeypatch.setenv("LLAMA_LLM_PORT", str(port))
        monkeypatch.setenv("LLAMA_CTX_SIZE", "512")
        monkeypatch.setenv("LLM_LOAD_AT_START", "true" if load_at_start else "false")
        paths = AppPaths.resolve().ensure()
        return build_core(load_settings(paths), paths)

    return make


async def test_waits_for_the_tray_then_loads_marked_models(core_for, port) -> None:
    core = core_for(True)
    order: list[str] = []

    async def tray() -> bool:
        order.append(f"tray:{core.manager.status(port).state.name}")
        return True

    await core.start()
    try:
        assert await autostart_sequence(core, tray) is True
        assert order == ["tray:STOPPED"], "models must load only after the tray is there"
        assert core.manager.status(port).state is ServerState.READY
    finally:
        await core.stop()
    assert core.manager.status(port).state is ServerState.STOPPED


async def test_loads_nothing_unmarked_and_goes_on_without_a_tray(core_for, port) -> None:
    core = core_for(False)
    await core.start()

    async def no_tray() -> bool:
        return False

    try:
        assert await autostart_sequence(core, no_tray) is False
        assert core.manager.status(port).state is ServerState.STOPPED
    finally:
        await core.stop()


def test_wait_for_system_tray(qloop) -> None:
    calls = []

    def appears_on_third_look() -> bool:
        calls.append(1)
        return len(calls) >= 3

    ok = qloop.run_until_complete(
        wait_for_system_tray(timeout=30, interval=0.01, available=appears_on_third_look)
    )
    assert ok and len(calls) == 3
    # Offscreen Qt has no tray: the real check gives up at the deadline.
    assert qloop.run_until_complete(wait_for_system_tray(timeout=0.05, interval=0.01)) is False
