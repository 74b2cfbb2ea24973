"""Models placed for a run: RUN_PRELOAD, AFTER_RUN and FAMILYLOG_MANAGES_MODELS, against
the real llama-server and the tiny model, with the stand-in FamilyLog."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.core.runs.records import Outcome
from tests.conftest import free_port
from tests.runs.conftest import Recorder, started_core
from tests.support.app import load_role

WAIT = 120


@pytest.fixture
def model_settings(make_settings, llama_server_bin, tiny_model, tiny_model_b, port, port2):
    def make(*args: str, **kw):
        values = {
            "LLAMA_SERVER_PATH": llama_server_bin,
            "VISION_MODEL_GGUF": str(tiny_model),
            "LLM_MODEL_GGUF": str(tiny_model_b),
            "LLAMA_VISION_PORT": port,
            "LLAMA_LLM_PORT": port2,
            "LLAMA_PORT": free_port(),
            "CONNECTION_TYPE": "offline",
        }
        values.update(kw)
        return make_settings(*args, **values)

    return make


def loaded(core) -> dict[int, str]:
    return {p: m.rsplit("/", 1)[-1] for p, m in core.manager.get_loaded_models().items()}


async def test_preload_both_in_parallel_ports(model_settings, port, port2) -> None:
    settings = model_settings("offline", RUN_PRELOAD="both", AFTER_RUN="restore")
    async with started_core(settings) as core:
        rec = Recorder(core)
        record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        assert record.outcome is Outcome.SUCCEEDED, rec.lines
        text = "\n".join(rec.lines)
        assert f"vision: llama-server on port {port} replied" in text
        assert f"llm: llama-server on port {port2} replied" in text
        assert "Loading the Vision model" in text and "Loading the LLM model" in text
        assert loaded(core) == {}  # restored: nothing was loaded before


@pytest.mark.parametrize(
    "after, expected",
    [
        ("keep", {"vision": True, "llm": True}),
        ("unload", {"vision": False, "llm": False}),
        ("restore", {"vision": True, "llm": False}),
    ],
)
async def test_after_run(model_settings, port, port2, after, expected) -> None:
    settings = model_settings("offline", "llm", RUN_PRELOAD="llm", AFTER_RUN=after)
    async with started_core(settings) as core:
        await load_role(core, "vision")
        record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        assert record.outcome is Outcome.SUCCEEDED
        now = loaded(core)
        assert (port in now) is expected["vision"] and (port2 in now) is expected["llm"], now
        if expected["vision"]:
            assert now[port] == "tiny-llama-Q8_0.gguf"


async def test_switch_mode_preload_on_the_single_port_and_restore(model_settings) -> None:
    settings = model_settings(
        "offline", "llm", RUN_MODE="switch", RUN_PRELOAD="llm", AFTER_RUN="restore"
    )
    single = settings.LLAMA_PORT
    async with started_core(settings) as core:
        rec = Recorder(core)
        await load_role(core, "vision")  # RUN_MODE=switch: on the single port
        assert loaded(core) == {single: "tiny-llama-Q8_0.gguf"}
        record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        assert record.outcome is Outcome.SUCCEEDED, rec.lines
        assert any(f"llm: llama-server on port {single} replied" in x for x in rec.lines)
        assert loaded(core) == {single: "tiny-llama-Q8_0.gguf"}  # vision is back


async def test_familylog_manages_its_models(model_settings, familylog_dir, port, port2) -> None:
    (familylog_dir / ".env").write_text(
        f"VISION_MODEL_GGUF={model_settings().VISION_MODEL_GGUF}\n"
        f"LLM_MODEL_GGUF={model_settings().LLM_MODEL_GGUF}\nLLAMA_CTX_SIZE=512\n"
    )
    settings = model_settings("manages", FAMILYLOG_MANAGES_MODELS=True, AFTER_RUN="keep")
    async with started_core(settings) as core:
        rec = Recorder(core)
        await load_role(core, "vision")
        await load_role(core, "llm")
        during: dict = {}

        def look(lines: list[str]) -> None:
            if any("llm: started llama-server" in x for x in lines):
                during["logs"] = core.runs.familylog_server_logs()
                during["app"] = loaded(core)

        core.runs.subscribe_output(look)
        record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        assert record.outcome is Outcome.SUCCEEDED, rec.lines
        # the app freed the ports FamilyLog's own servers needed, and left them alone
        assert during["app"] == {}
        logs = familylog_dir / "logs"
        assert during["logs"] == sorted(
            [logs / f"llama-server-{port}.log", logs / f"llama-server-{port2}.log"]
        )
        assert core.runs.familylog_server_logs() == []  # only while the run lasts
        assert "unloading the app's models first" in "\n".join(rec.lines)
        # and put its own models back afterwards
        assert loaded(core) == {port: "tiny-llama-Q8_0.gguf", port2: "tiny-other-F32.gguf"}


async def test_failed_restore_is_reported(model_settings, port) -> None:
    """A model cannot come back after the run (something else took its port): a warning
    with the port, and the run still ends normally."""
    settings = model_settings("ok", "1", FAMILYLOG_MANAGES_MODELS=True)
    async with started_core(settings) as core:
        rec = Recorder(core)
        await load_role(core, "vision")
        placement = core.runs.runner.placement
        placement.port_release_timeout = 0.2
        real_prepare = placement.prepare
        blocker = socket.socket()

        async def prepare_then_lose_the_port(note):
            prepared = await real_prepare(note)  # the app's vision server is unloaded here
            blocker.bind(("127.0.0.1", port))
            blocker.listen()
            return prepared

        placement.prepare = prepare_then_lose_the_port
        try:
            record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
        finally:
            blocker.close()
        assert record.outcome is Outcome.SUCCEEDED
        warn = [n for n in rec.notices if n.title == "Models not restored after the FamilyLog run"]
        assert warn and str(port) in warn[0].text
        assert core.runs.status().state == "idle"
