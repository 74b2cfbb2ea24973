"""No request waits forever: a server that stops answering mid-request is noticed, shown as
"not responding" while that is decided, declared hung after HUNG_PROBE_SECONDS (its clients
get 503 with the reason) and restarted; a long generation is not taken for a hang; a
server silent past UPSTREAM_READ_TIMEOUT_SECONDS answers 504 naming the model, and is
checked at once.

A real llama-server, stopped with SIGSTOP (it then answers nothing, not even ``/health``),
real clients through the app's API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import httpx

from app.core.model_rows import model_row
from app.core.models.entry import LLM
from app.core.servers.keys import auth_headers, server_url
from app.core.servers.states import ServerState
from tests.conftest import free_port
from tests.faults.conftest import LONG_PROMPT, SLOW_ARGS
from tests.support.app import AS_APP, alive, load_role, make_core, settings_for, titles
from tests.support.wait import until


def _core(llama_server_bin, model, **kw):
    s = settings_for(llama_server_bin, LLM_MODEL_GGUF=str(model), API_PORT=free_port(), **kw)
    return make_core(s, **{**AS_APP, "api": True})


def _client(core) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{core.api.port}", timeout=120, trust_env=False
    )


def _chat(key: str, text: str = "hi", **kw) -> dict:
    return {"model": key, "messages": [{"role": "user", "content": text}], **kw}


async def test_a_server_stopped_mid_stream_is_found_hung_and_restarted(
    llama_server_bin, slow_model
) -> None:
    hung = 4.0
    core = _core(
        llama_server_bin, slow_model, HUNG_PROBE_SECONDS=hung, STOP_GRACE_SECONDS=2, **SLOW_ARGS
    )
    await core.start()
    try:
        entry = core.catalogue.role(LLM)
        first = await load_role(core, LLM)
        async with _client(core) as c:
            lines: list[str] = []

            async def streaming() -> int:
                body = _chat(entry.key, stream=True, max_tokens=1500, ignore_eos=True)
                async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        lines.append(line)
                    return r.status_code

            a = asyncio.create_task(streaming())
            await until(lambda: any(x.startswith("data: ") for x in lines), 60)
            os.kill(first.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                b = asyncio.create_task(c.post("/v1/chat/completions", json=_chat(entry.key)))
                await until(lambda: core.lifecycle.instance(entry).in_flight == 2, 10)
                # while it is being decided: "not responding", in --ps and the models window
                await until(lambda: not core.lifecycle.instance(entry).responding, hung * 2)
                ps = (await c.get("/api/v0/ps")).json()["models"]
                assert [m["state"] for m in ps] == ["not responding"]
                assert model_row(core, entry).state == "not responding"
                # declared hung: every client in flight is answered with the reason
                rb = await asyncio.wait_for(b, hung * 3)
                took = time.monotonic() - stopped
                assert rb.status_code == 503, rb.text
                assert "stopped responding" in rb.json()["error"]["message"]
                assert entry.title in rb.json()["error"]["message"]
                assert await asyncio.wait_for(a, 30) == 200
                errors = [json.loads(x[6:]) for x in lines if x.startswith('data: {"error"')]
                assert errors and "stopped responding" in errors[0]["error"]["message"]
                # the design's bound: a quarter (the next check) plus the hung limit
                assert took < hung * 1.25 + 6, f"the clients waited {took:.1f} s"
            finally:
                if alive(first.pid):
                    os.kill(first.pid, signal.SIGCONT)
            # restarted, with a notice, and serving again
            await until(lambda: any(t.startswith("Restarted") for t in titles(core)), 120)
            assert any(t.endswith("is not responding") for t in titles(core))
            now = core.manager.status(first.port)
            assert now.state is ServerState.READY and now.pid != first.pid
            assert not alive(first.pid)
            r = await c.post("/v1/chat/completions", json=_chat(entry.key, max_tokens=2))
            assert r.status_code == 200
            assert core.lifecycle.instance(entry).responding
    finally:
        await core.stop()


async def test_a_long_prompt_is_not_taken_for_a_hang(llama_server_bin, slower_model) -> None:
    """The main loop is busy with one prompt for longer than HUNG_PROBE_SECONDS: the check
    asks /health (its HTTP thread answers), so nothing is declared and nothing restarted."""
    hung = 1.0
    core = _core(llama_server_bin, slower_model, HUNG_PROBE_SECONDS=hung, **SLOW_ARGS)
    await core.start()
    try:
        entry = core.catalogue.role(LLM)
        first = await load_role(core, LLM)
        seen: list[bool] = []
        async with _client(core) as c:
            t0 = time.monotonic()
            req = asyncio.create_task(
                c.post(
                    "/v1/completions",
                    json={"model": entry.key, "prompt": LONG_PROMPT, "max_tokens": 2},
                )
            )
            await until(lambda: core.lifecycle.in_flight(first.port) == 1, 10)
            st = core.manager.status(first.port)

            async def slots_wait() -> float:
                """What the idle check (``/slots``, the main loop's) would wait: asked
                until one waits past the hung limit (the prompt has reached the server
                some time after it is counted in flight) or the prompt is done."""
                longest = 0.0
                async with httpx.AsyncClient(trust_env=False, timeout=60) as direct:
                    while not req.done() and longest <= hung:
                        s0 = time.monotonic()
                        slots = await direct.get(
                            server_url(first.port, "/slots", st), headers=auth_headers(st)
                        )
                        assert slots.status_code == 200, slots.text
                        longest = max(longest, time.monotonic() - s0)
                return longest

            probe = asyncio.create_task(slots_wait())
            while not req.done():
                seen.append(core.lifecycle.instance(entry).responding)
                await asyncio.sleep(0.05)
            slots_took = await probe
            r = req.result()
            took = time.monotonic() - t0
        assert r.status_code == 200, r.text
        assert took > 2 * hung and slots_took > hung, (took, slots_took)  # it was busy
        assert all(seen), "shown as not responding while it was busy"
        assert not any("not responding" in t or "Restart" in t for t in titles(core))
        assert core.manager.status(first.port).pid == first.pid
    finally:
        await core.stop()


async def test_a_silent_server_answers_504_naming_the_model(llama_server_bin, slow_model) -> None:
    """Nothing for UPSTREAM_READ_TIMEOUT_SECONDS: 504 naming the model, and its server is
    checked at once; the server itself is fine and stays."""
    limit = 0.5
    core = _core(
        llama_server_bin,
        slow_model,
        HUNG_PROBE_SECONDS=600,
        UPSTREAM_READ_TIMEOUT_SECONDS=limit,
        **SLOW_ARGS,
    )
    await core.start()
    try:
        entry = core.catalogue.role(LLM)
        first = await load_role(core, LLM)
        suspects: list[int] = []
        core.lifecycle.watch_suspects(suspects.append)
        async with _client(core) as c:
            t0 = time.monotonic()
            r = await c.post(
                "/v1/completions",
                json={"model": entry.key, "prompt": LONG_PROMPT, "max_tokens": 2},
            )
            took = time.monotonic() - t0
            assert r.status_code == 504, r.text
            message = r.json()["error"]["message"]
            assert entry.title in message and "UPSTREAM_READ_TIMEOUT_SECONDS" in message
            assert took < limit + 5, took
            assert suspects == [first.port]  # checked at once
            assert core.manager.status(first.port).state is ServerState.READY
        assert core.manager.status(first.port).pid == first.pid
        assert not any("not responding" in t for t in titles(core))
    finally:
        await core.stop()
