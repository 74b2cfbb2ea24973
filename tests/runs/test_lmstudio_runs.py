"""Unmigrated FamilyLog (an LM Studio client) run from the app against the app's own API.

The stand-in's ``lmstudio`` variant loads the vision model by its key through the app's
LM Studio-compatible API, chats, unloads it with ``instance_id`` = the key, then the same
for the LLM. Real API server (``build_core``), real llama-server, the tiny models; the run
mode decides which ports the API puts the models on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from app.core.lifecycle import memory
from app.core.runs.records import Outcome
from app.core.servers.states import ServerState, StateEvent
from tests.api.conftest import servers
from tests.conftest import free_port
from tests.runs.conftest import Recorder, started_core
from tests.support.app import load_role

WAIT = 120
VISION = "qwen/qwen3-vl-8b"
LLM = "google/gemma-3-12b"


@pytest.fixture
def lm_settings(make_settings, llama_server_bin, tiny_model, tiny_model_b, port, port2):
    """Settings for the ``lmstudio`` stand-in: the API on a port the OS picks (API_PORT=0)."""

    def make(**kw):
        values = {
            "LLAMA_SERVER_PATH": llama_server_bin,
            "VISION_MODEL_GGUF": str(tiny_model),  # no mmproj: a text model stands in
            "VISION_MODEL_ID": VISION,
            "LLM_MODEL_GGUF": str(tiny_model_b),
            "LLM_MODEL_ID": LLM,
            "LLAMA_VISION_PORT": port,
            "LLAMA_LLM_PORT": port2,
            "LLAMA_PORT": free_port(),
            "API_ENABLED": True,
            "API_PORT": 0,
        }
        values.update(kw)
        return make_settings("lmstudio", **values)

    return make


@dataclass
class Served:
    port: int
    model: str  # the file name
    pid: int
    cmdline: list[str]


class ServerWatch:
    """Every llama-server the app brought to ready, with its process's command line."""

    def __init__(self, core) -> None:
        self.ready: list[Served] = []
        self._off = core.manager.subscribe(self._on)

    def _on(self, e: StateEvent) -> None:
        if e.new is ServerState.READY and e.status.spec and e.status.pid:
            try:
                cmd = psutil.Process(e.status.pid).cmdline()
            except psutil.Error:
                cmd = []
            name = Path(e.status.spec.model_path).name
            self.ready.append(Served(e.port, name, e.status.pid, cmd))

    @property
    def placed(self) -> list[tuple[int, str]]:
        return [(s.port, s.model) for s in self.ready]

    def gone(self) -> bool:
        for s in self.ready:
            try:
                if psutil.Process(s.pid).status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                pass
        return True


def alias_of(cmd: list[str]) -> str | None:
    return cmd[cmd.index("--alias") + 1] if "--alias" in cmd else None


async def run_lmstudio(core):
    rec = Recorder(core)
    watch = ServerWatch(core)
    record = await asyncio.wait_for(core.runs.process_now().wait(), WAIT)
    text = record.log_path.read_text(encoding="utf-8")
    assert record.outcome is Outcome.SUCCEEDED, text
    return record, text, watch, rec


def assert_the_client_did_its_work(core, text: str) -> None:
    api = core.api
    assert api is not None and api.port and api.port != 0, api and api.error
    base = f"http://127.0.0.1:{api.port}"  # the bound port reached the child, not "0"
    for phase, key in (("vision", VISION), ("llm", LLM)):
        assert f"[standin] {phase}: loading {key} via {base}/api/v1/models/load" in text
        assert f"[standin] {phase}: load answered instance {key!r}" in text
        assert f"[standin] {phase}: reply from model {key!r}: " in text  # the key, not a path
        assert f"[standin] {phase}: unloaded {key}" in text
    assert "[standin] done" in text
    assert "Run succeeded" in text and "exit code 0" in text


def assert_nothing_left(core, watch: ServerWatch) -> None:
    assert core.manager.get_loaded_models() == {}
    assert watch.gone()
    assert servers() == []


@pytest.mark.parametrize("mode", ["switch", "parallel"])
async def test_lmstudio_client_run(lm_settings, tiny_model, tiny_model_b, port, port2, mode):
    settings = lm_settings(RUN_MODE=mode)
    async with started_core(settings) as core:
        record, text, watch, rec = await run_lmstudio(core)
        assert_the_client_did_its_work(core, text)
        # switch, the seed's approach A: one port, one model at a time; parallel (B): one each
        single = settings.LLAMA_PORT
        ports = [single, single] if mode == "switch" else [port, port2]
        assert watch.placed == list(zip(ports, [tiny_model.name, tiny_model_b.name], strict=True))
        assert [alias_of(s.cmdline) for s in watch.ready] == [VISION, LLM]
        assert_nothing_left(core, watch)
        # the history entry and the live output match the log file
        (last,) = core.runs.recent_runs(1)
        assert last == record
        assert (last.outcome, last.exit_code, last.trigger) == (Outcome.SUCCEEDED, 0, "manual")
        assert last.log_path.parent == core.paths.runs_dir
        assert "[standin] done" in rec.lines
        assert core.runs.status().state == "idle"


@pytest.mark.parametrize("ram_gb", [256, 0])
async def test_lmstudio_client_run_in_auto_mode(
    lm_settings, monkeypatch, tiny_model, tiny_model_b, port, port2, ram_gb
) -> None:
    """``auto`` weighs each load against the free memory (RAM here: the CPU build has no
    GPU figure), evicting idle models when it is short; FamilyLog's roles keep their own
    ports either way, so plenty of RAM and none at all place them alike. The memory figure
    is the only stand-in here, and it must have been read."""
    asked: list[int] = []

    def ram() -> int:
        asked.append(ram_gb)
        return ram_gb * 1024**3

    monkeypatch.setattr(memory, "ram_available", ram)
    settings = lm_settings(RUN_MODE="auto", LLAMA_GPU_LAYERS=0)
    async with started_core(settings) as core:
        record, text, watch, _ = await run_lmstudio(core)
        assert_the_client_did_its_work(core, text)
        assert len(asked) >= 2  # once for each load
        assert settings.LLAMA_PORT not in {p for p, _ in watch.placed}
        assert watch.placed == [(port, tiny_model.name), (port2, tiny_model_b.name)]
        assert_nothing_left(core, watch)
        assert core.runs.recent_runs(1) == [record]


async def test_models_loaded_before_the_run_are_restored(lm_settings, tiny_model, port2) -> None:
    """The user had the LLM loaded from the tray; the client unloads it during the run;
    AFTER_RUN=restore brings it back on its port, with its LM Studio key."""
    settings = lm_settings(RUN_MODE="parallel", AFTER_RUN="restore")
    async with started_core(settings) as core:
        await load_role(core, "llm")
        before = core.manager.status(port2)
        record, text, watch, _ = await run_lmstudio(core)
        assert_the_client_did_its_work(core, text)
        assert f"Restoring: loading {LLM}" in text  # by its LM Studio key
        now = core.manager.status(port2)
        assert now.state is ServerState.READY and now.spec == before.spec
        assert now.pid != before.pid  # the client really unloaded it during the run
        assert alias_of(psutil.Process(now.pid).cmdline()) == LLM
        assert set(core.manager.get_loaded_models()) == {port2}
        assert record.outcome is Outcome.SUCCEEDED


async def test_child_gets_the_setting_when_the_api_is_not_served(lm_settings, port) -> None:
    """API_PORT taken by another program (LM Studio itself?): the API is off with a notice,
    and the child is still pointed at API_PORT, where that program answers."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        settings = lm_settings(API_PORT=busy, FAMILYLOG_COMMAND="true")
        async with started_core(settings) as core:
            assert core.api is not None and core.api.port is None and core.api.error
            env = core.runs.runner.placement.child_env()
            assert env["API_PORT"] == str(busy)
            assert env["FAMILYLOG_TRAY_API_URL"] == f"http://127.0.0.1:{busy}"
