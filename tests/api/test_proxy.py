"""The OpenAI-compatible proxy against real llama-server processes: JIT, streaming, swaps."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from app.core.lifecycle.model_state import ModelState
from app.core.servers.keys import server_url
from app.core.servers.states import ServerState
from tests.api.conftest import base_url, chat, client, servers
from tests.conftest import free_port
from tests.support.paced_relay import PacedRelay, exec_on_hidden_port
from tests.support.wait import until

VISION = "qwen/qwen3-vl-8b"
LLM = "google/gemma-3-12b"


def oai(core, key: str = "lm-studio") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url(core)}/v1", api_key=key, max_retries=0)


async def test_openai_package_chat_and_stream_with_jit_load(start_api) -> None:
    core = await start_api()
    assert servers() == []
    async with oai(core) as ai:
        models = await ai.models.list()
        assert [m.id for m in models.data] == [VISION, LLM]

        done = await ai.chat.completions.create(
            model=LLM,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=8,
            extra_body={"ignore_eos": True},  # the random tiny model may sample its EOS early
        )
        assert done.choices[0].message.content
        assert done.usage.completion_tokens == 8
        assert len(servers()) == 1  # loaded just in time
        assert core.manager.status(core.settings.LLAMA_LLM_PORT).state is ServerState.READY

        stream = await ai.chat.completions.create(
            model=LLM,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=32,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        pieces = [c.choices[0].delta.content async for c in stream if c.choices]
        assert sum(1 for p in pieces if p) >= 16
        assert len(servers()) == 1


async def test_each_event_reaches_the_client_before_llama_server_sends_the_next(
    start_api, llama_server_bin, tmp_path
) -> None:
    """Not buffered: a relay in front of the real llama-server holds each streamed event
    until the test lets it go, and lets the next go only once the client (through the
    app's API) has read the one before. A proxy that buffers (4 KB, a line, the answer)
    never delivers the held event, and this test fails at the read's deadline."""
    hidden = free_port()
    wrapper = exec_on_hidden_port(tmp_path / "llama-server", llama_server_bin, hidden)
    core = await start_api(LLAMA_SERVER_PATH=str(wrapper))
    relay = PacedRelay(core.settings.LLAMA_LLM_PORT, hidden)
    listening: list[asyncio.Task] = []
    core.manager.subscribe(
        lambda ev: (
            listening.append(asyncio.ensure_future(relay.start()))
            if ev.port == relay.port and ev.new is ServerState.STARTING and not listening
            else None
        )
    )
    read_at: list[float] = []

    async def pace() -> None:
        """Release event n+1 only when llama-server has written it and event n was read."""
        while True:
            await until(lambda: relay.held == 1 and len(read_at) == len(relay.released), 60)
            relay.release()

    pacer = asyncio.create_task(pace())
    events: list[str] = []
    try:
        async with client(core) as c:
            body = chat(LLM, 48, stream=True, ignore_eos=True)
            async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                lines = r.aiter_lines()
                while not events or events[-1] != "data: [DONE]":
                    try:
                        line = await asyncio.wait_for(anext(lines), 30)
                    except TimeoutError:
                        raise AssertionError(
                            f"event {len(events) + 1} released {len(relay.released)} held "
                            f"{relay.held}, not read within 30 s: {events[-3:]}"
                        ) from None
                    if line:
                        read_at.append(time.perf_counter())
                        events.append(line)
                        assert len(read_at) == len(relay.released), "read before it was sent?"
    finally:
        pacer.cancel()
        await relay.stop()
    assert len(events) >= 48 and all(e.startswith("data: ") for e in events)
    delays = sorted(b - a for a, b in zip(relay.released, read_at, strict=True))
    print(f"event written -> read by the client: median {delays[len(delays) // 2] * 1000:.2f} ms, "
          f"max {delays[-1] * 1000:.2f} ms over {len(delays)} events")  # fmt: skip


async def test_single_flight_ten_first_requests_one_process(start_api) -> None:
    core = await start_api()
    seen: list[int] = []
    core.manager.subscribe(
        lambda ev: seen.append(ev.port) if ev.new is ServerState.STARTING else None
    )
    async with client(core) as c:
        rs = await asyncio.gather(
            *(c.post("/v1/chat/completions", json=chat(VISION, 4)) for _ in range(10))
        )
    assert [r.status_code for r in rs] == [200] * 10, [r.text for r in rs]
    assert seen == [core.settings.LLAMA_VISION_PORT]
    assert len(servers()) == 1


async def test_switch_mode_swaps_on_one_port(start_api) -> None:
    core = await start_api(RUN_MODE="switch")
    port = core.settings.LLAMA_PORT
    async with client(core) as c:
        r = await c.post("/v1/chat/completions", json=chat(VISION))
        assert r.status_code == 200, r.text
        assert core.manager.get_loaded_models() == {port: core.settings.VISION_MODEL_GGUF}

        r = await c.post("/v1/completions", json={"model": LLM, "prompt": "a", "max_tokens": 4})
        assert r.status_code == 200, r.text
        assert core.manager.get_loaded_models() == {port: core.settings.LLM_MODEL_GGUF}
        assert len(servers()) == 1

        listed = (await c.get("/api/v0/models")).json()["data"]
        assert {m["id"]: m["state"] for m in listed} == {VISION: "not-loaded", LLM: "loaded"}


async def test_parallel_mode_keeps_both(start_api) -> None:
    core = await start_api(RUN_MODE="parallel")
    s = core.settings
    async with client(core) as c:
        for model in (VISION, LLM, VISION):
            r = await c.post("/v1/chat/completions", json=chat(model))
            assert r.status_code == 200, r.text
    assert core.manager.get_loaded_models() == {
        s.LLAMA_VISION_PORT: s.VISION_MODEL_GGUF,
        s.LLAMA_LLM_PORT: s.LLM_MODEL_GGUF,
    }
    assert len(servers()) == 2


async def test_swap_waits_for_the_stream_on_the_evicted_model(start_api) -> None:
    core = await start_api(RUN_MODE="switch")
    port = core.settings.LLAMA_PORT
    async with client(core) as c:
        # long enough to be still streaming when the other request is planned, on a busy
        # machine too: one that ended first leaves only the stop's few milliseconds of
        # draining to see, with the server no longer ready
        body = chat(VISION, 450, stream=True, ignore_eos=True)
        async with c.stream("POST", "/v1/chat/completions", json=body) as r:
            lines = r.aiter_lines()
            first = await anext(lines)
            assert first.startswith("data: ")
            other = asyncio.create_task(c.post("/v1/chat/completions", json=chat(LLM)))
            await until(lambda: core.lifecycle.is_draining(port), 30)
            assert core.manager.status(port).state is ServerState.READY
            rest = [line async for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        finals = [json.loads(x[6:]) for x in rest[:-1]]
        assert finals[-1]["choices"][0]["finish_reason"] == "length"
        r = await asyncio.wait_for(other, 60)
        assert r.status_code == 200, r.text
    assert core.manager.get_loaded_models() == {port: core.settings.LLM_MODEL_GGUF}


async def test_api_key_is_enforced(start_api) -> None:
    core = await start_api(API_KEY="s3cret")
    async with client(core) as c:
        r = await c.get("/api/v1/models")
        assert r.status_code == 401 and "API_KEY" in r.json()["error"]["message"]
        r = await c.post(
            "/v1/chat/completions", json=chat(LLM), headers={"Authorization": "Bearer no"}
        )
        assert r.status_code == 401
    assert servers() == []
    async with oai(core, "wrong") as ai:
        with pytest.raises(openai.AuthenticationError):
            await ai.models.list()
    async with oai(core, "s3cret") as ai:
        done = await ai.chat.completions.create(
            model=LLM, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        assert done.choices[0].message.content is not None
    # llama-server itself asks for the key too; the proxy passed it on.
    async with httpx.AsyncClient(trust_env=False) as direct:
        port = core.settings.LLAMA_LLM_PORT
        st = core.manager.status(port)
        r = await direct.post(server_url(port, "/v1/chat/completions", st), json=chat(LLM))
        assert r.status_code == 401


async def test_model_absent_or_unknown_uses_the_only_loaded_one(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.post("/v1/chat/completions", json=chat(None))
        assert r.status_code == 400 and VISION in r.json()["error"]["message"]
        r = await c.post("/v1/chat/completions", json=chat("no-such-model"))
        assert r.status_code == 404 and r.json()["error"]["known_models"] == [VISION, LLM]
        assert servers() == []

        assert (await c.post("/api/v1/models/load", json={"model": LLM})).status_code == 200
        for name in (None, "no-such-model"):
            r = await c.post("/v1/chat/completions", json=chat(name))
            assert r.status_code == 200, r.text
        r = await c.post("/v1/chat/completions", content=b"[1, 2]")
        assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]
    assert len(servers()) == 1


async def test_jit_off_answers_not_loaded(start_api) -> None:
    core = await start_api(JIT_LOAD=False)
    async with client(core) as c:
        r = await c.post("/v1/chat/completions", json=chat(LLM))
        assert r.status_code == 400
        assert "JIT_LOAD=false" in r.json()["error"]["message"]
        assert servers() == []
        await c.post("/api/v1/models/load", json={"model": LLM})
        r = await c.post("/v1/chat/completions", json=chat(LLM))
        assert r.status_code == 200


async def test_jit_load_failure_is_503_with_reason(start_api, corrupt_model) -> None:
    core = await start_api(VISION_MODEL_GGUF=str(corrupt_model))
    async with client(core) as c:
        rs = await asyncio.gather(
            *(c.post("/v1/chat/completions", json=chat(VISION)) for _ in range(3))
        )
    for r in rs:
        assert r.status_code == 503
        assert "exited with code" in r.json()["error"]["message"]
    assert servers() == []


async def test_idle_unload_and_remaining_time(start_api) -> None:
    core = await start_api(IDLE_UNLOAD_MINUTES=0.02)  # 1.2 s
    port = core.settings.LLAMA_LLM_PORT
    pool = core.lifecycle
    async with client(core) as c:
        r = await c.post("/v1/chat/completions", json=chat(LLM))
        assert r.status_code == 200
    left = core.idle.remaining()
    assert set(left) <= {port} and all(0 <= v <= 1.2 for v in left.values())
    stopped = lambda: core.manager.status(port).state is ServerState.STOPPED  # noqa: E731
    await until(stopped, 30)
    assert core.idle.remaining() == {}
    assert servers() == []
    # A request in flight holds the clock at the full idle time.
    async with pool.holding(LLM, jit=True) as used:
        assert used.port == port and core.idle.remaining() == {port: 1.2}
    await until(stopped, 30)


async def test_requests_after_a_quiet_spell_still_reach_llama_server(start_api) -> None:
    """llama-server drops a kept-alive connection after 5 s idle; the next request must not
    land on the dead connection (the scenario itself is the wait, not a synchronisation)."""
    core = await start_api()
    async with client(core) as c:
        assert (await c.post("/v1/chat/completions", json=chat(LLM))).status_code == 200
        await asyncio.sleep(6)
        r = await c.post("/v1/chat/completions", json=chat(LLM))
        assert r.status_code == 200, r.text


async def test_a_request_for_the_model_being_evicted_waits_and_reloads_it(start_api) -> None:
    core = await start_api(RUN_MODE="switch")
    port = core.settings.LLAMA_PORT
    async with client(core) as c:
        body = chat(VISION, 100, stream=True, ignore_eos=True)
        async with c.stream("POST", "/v1/chat/completions", json=body) as r:
            lines = r.aiter_lines()
            assert (await anext(lines)).startswith("data: ")
            to_llm = asyncio.create_task(c.post("/v1/chat/completions", json=chat(LLM)))
            # being evicted: draining while the stream lasts, stopping or gone once it ended
            await until(lambda: core.lifecycle.state(VISION) is not ModelState.READY, 30)
            back = asyncio.create_task(c.post("/v1/chat/completions", json=chat(VISION)))
            rest = [line async for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        r1, r2 = await asyncio.wait_for(asyncio.gather(to_llm, back), 60)
        assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
    assert core.manager.get_loaded_models() == {port: core.settings.VISION_MODEL_GGUF}
    assert len(servers()) == 1
