"""A load that hangs can be cancelled: unloading a model that is still loading stops its
server, and whoever waited for the load gets a clear error."""

from __future__ import annotations

import asyncio

import psutil

from app.core.servers.states import ServerState
from tests.api.conftest import client
from tests.support.fakes import never_ready_server
from tests.support.wait import until

LLM = "google/gemma-3-12b"


async def test_unloading_a_model_that_is_loading_cancels_the_load(start_api, tmp_path) -> None:
    server = never_ready_server(tmp_path / "llama-server")
    core = await start_api(LLAMA_SERVER_PATH=str(server), LLAMA_READY_TIMEOUT=600)
    port = core.settings.LLAMA_LLM_PORT
    async with client(core) as c:
        load = asyncio.create_task(c.post("/api/v1/models/load", json={"model": LLM}))
        await until(lambda: core.manager.status(port).state is ServerState.STARTING)
        pid = core.manager.status(port).pid
        r = await c.post("/api/v1/models/unload", json={"instance_id": LLM})
        assert r.status_code == 200, r.text
        answer = await asyncio.wait_for(load, 30)
    assert answer.status_code == 503, answer.text
    assert f"Loading {LLM} was cancelled" in answer.json()["error"]["message"]
    assert core.manager.status(port).state is ServerState.STOPPED
    assert core.lifecycle.instance(LLM) is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
