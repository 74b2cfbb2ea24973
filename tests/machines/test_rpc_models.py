"""Models across llama.cpp RPC workers, end to end: real workers started by the app's own
--rpc-worker, the real llama-server, the app's API.

- placed across two workers, a model answers with the same tokens as loaded here
  (temperature 0, a fixed seed);
- a worker killed while the model answers: the requests in flight get a clear 503 naming
  it (an error event in a stream begun), the user is told, and the next request is served
  here;
- ``auto`` puts a model on a worker only when it does not fit here (the free memory here
  is a stand-in GPU's; the worker's is its own, through the RPC protocol);
- a model whose section of ``models.ini`` names a worker (``rpc = host:port``) runs across
  it when a request loads it, and here once the section no longer does.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from app.core.machines.workers import WorkerState
from app.core.models.launch_args import rpc_of
from tests.api.conftest import chat, client
from tests.machines.conftest import FreeGpu
from tests.support.app import AS_APP, make_core, notice, settings_for
from tests.support.wait import until

GB = 1024**3
SAME = {"temperature": 0, "seed": 42}


async def start(llama_server_bin: str, model: Path, gpu=None, watch: bool = True, **over):
    s = settings_for(llama_server_bin, LLM_MODEL_GGUF=str(model), API_PORT=0, **over)
    core = make_core(s, **AS_APP, gpu=gpu)
    if not watch:  # the workers' connections not watched: llama-server finds the loss itself
        core.workers.watch_every = 3600
    await core.start()
    return core


def workers_of(core, key: str) -> tuple[str, ...] | None:
    inst = core.lifecycle.ready(key)
    assert inst is not None, f"{key} is not loaded"
    return rpc_of(inst.status.spec.extra_args)


async def answer(c: httpx.AsyncClient, key: str, **extra) -> str:
    r = await c.post("/v1/chat/completions", json=chat(key, 24, **SAME, **extra))
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


async def test_across_two_workers_the_same_tokens_as_here(
    rpc_worker, llama_server_bin, tiny_model
) -> None:
    w1, w2 = rpc_worker(), rpc_worker()
    core = await start(llama_server_bin, tiny_model)
    key = core.catalogue.role("llm").key
    try:
        async with client(core) as c:
            load = {"model": key, "rpc": [w1.address, w2.address]}
            r = await c.post("/api/v1/models/load", json=load)
            assert r.status_code == 200, r.text
            assert r.json()["config"]["rpc"] == [w1.address, w2.address]
            assert workers_of(core, key) == (w1.address, w2.address)
            shown = {s.address: s for s in await core.workers.check()}
            assert shown[w1.address].state is WorkerState.IN_USE
            assert key in shown[w1.address].reason or "port" in shown[w1.address].reason
            listed = (await c.get("/api/v1/models")).json()["models"]
            config = next(m for m in listed if m["key"] == key)["loaded_instances"][0]["config"]
            assert config["rpc"] == [w1.address, w2.address]
            across = await answer(c, key)
            assert (await c.post("/api/v1/models/unload", json={"instance_id": key})).is_success
            assert (await c.post("/api/v1/models/load", json={"model": key})).is_success
            assert workers_of(core, key) is None
            here = await answer(c, key)
        assert across == here and len(here) > 3, (across, here)
    finally:
        await core.stop()


@pytest.mark.parametrize("watch", [True, False], ids=["seen-by-the-app", "seen-by-llama-server"])
async def test_a_worker_killed_mid_answer(
    rpc_worker, llama_server_bin, tiny_model, watch: bool
) -> None:
    """Found by the app (the model's connection to the worker closed: it stops the model)
    or by llama-server itself (it aborts: the supervisor does not start it again)."""
    w = rpc_worker()
    core = await start(llama_server_bin, tiny_model, watch=watch, LLAMA_CTX_SIZE=4096)
    key = core.catalogue.role("llm").key
    try:
        async with client(core) as c:
            r = await c.post("/api/v1/models/load", json={"model": key, "rpc": w.address})
            assert r.status_code == 200, r.text
            long = chat(key, 3000, **SAME, stream=True)
            events: list[str] = []

            async def stream() -> None:
                async with c.stream("POST", "/v1/chat/completions", json=long) as s:
                    assert s.status_code == 200
                    async for line in s.aiter_lines():
                        if line.startswith("data: "):
                            events.append(line.removeprefix("data: "))

            streaming = asyncio.create_task(stream())
            await until(lambda: len(events) > 5)
            whole = asyncio.create_task(c.post("/v1/chat/completions", json=chat(key, 3000)))
            await until(lambda: core.lifecycle.in_flight(core.lifecycle.ready(key).port) == 2)
            w.kill()
            await asyncio.wait_for(streaming, 60)  # nothing hangs
            last = json.loads(events[-1])
            assert last["error"]["code"] == "rpc_worker_lost", last
            assert f"RPC worker {w.address} is gone" in last["error"]["message"]
            r = await asyncio.wait_for(whole, 60)
            assert r.status_code == 503, r.text
            assert w.address in r.json()["error"]["message"]
            await until(lambda: any("stopped: RPC" in n.title for n in core.notices.history))
            told = notice(core, "stopped: RPC worker")
            assert w.address in told.title and "not started again" in told.text
            # the next request loads it here, and is answered
            assert len(await answer(c, key)) > 0
            assert workers_of(core, key) is None
        assert core.workers.statuses[w.address].state is WorkerState.OFFLINE
    finally:
        await core.stop()


async def test_auto_uses_a_worker_only_when_the_model_does_not_fit_here(
    rpc_worker, llama_server_bin, tiny_model
) -> None:
    w = rpc_worker()
    gpu = FreeGpu(100 * 1024**2)  # the tiny model needs more than 512 MB (its margin)
    core = await start(llama_server_bin, tiny_model, gpu, RUN_MODE="auto", RPC_WORKERS=w.address)
    key = core.catalogue.role("llm").key
    try:
        async with client(core) as c:
            assert len(await answer(c, key)) > 0
            assert workers_of(core, key) == (w.address,)
            await core.lifecycle.unload_all()
            gpu.free = 100 * GB
            assert len(await answer(c, key)) > 0
            assert workers_of(core, key) is None
    finally:
        await core.stop()


async def test_a_models_preset_names_its_worker(rpc_worker, llama_server_bin, tiny_model) -> None:
    w = rpc_worker()
    core = await start(llama_server_bin, tiny_model)
    key = core.catalogue.role("llm").key
    ini = core.paths.presets_file
    try:
        ini.write_text(f"[{key}]\nrpc = {w.address}\n", encoding="utf-8")
        async with client(core) as c:
            across = await answer(c, key)  # loaded on demand, as its section says
            assert workers_of(core, key) == (w.address,)
            assert core.lifecycle.ready(key).stale is None
            listed = (await c.get("/api/v1/models")).json()["models"]
            config = next(m for m in listed if m["key"] == key)["loaded_instances"][0]["config"]
            assert config["rpc"] == [w.address]
            # another worker named: the running model is old until it is loaded again
            ini.write_text(f"[{key}]\nrpc = 192.0.2.1:50052\n", encoding="utf-8")
            stale = core.lifecycle.ready(key).stale
            assert stale is not None and "other RPC workers" in stale, stale
            ini.write_text("", encoding="utf-8")  # the section gone: here
            await core.lifecycle.unload_all()
            here = await answer(c, key)
            assert workers_of(core, key) is None
        assert across == here and len(here) > 3, (across, here)
    finally:
        await core.stop()
