"""A client that goes away in the middle of a stream, on every streaming route: the app
cancels the upstream request, so nothing stays in flight (``GET /api/v0/ps`` shows 0),
llama-server cancels the generation and frees its slot (its ``/slots``, asked with the
per-start key, and its own log), and the model serves the next request.

llama-server runs with ``--ignore-eos`` (through ``LLAMA_EXTRA_ARGS``), so every route
would generate its whole budget: a generation that stopped far short of it was cancelled.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from app.core.servers.keys import auth_headers, server_url
from tests.api.conftest import chat, client
from tests.support.tiny_model import write_tiny_model
from tests.support.wait import until

LLM = "google/gemma-3-12b"
BUDGET = 2000  # tokens each stream asks for: at least tens of seconds of generation here
HELLO = [{"role": "user", "content": "Hello"}]
# Every route that streams, with the body that asks it to. LM Studio's SDK channel (a
# websocket, not a POST) has its own: tests/api/lmstudio_ws/test_sdk.py's
# test_disconnect_mid_stream_leaves_nothing_running.
STREAMS = {
    "/v1/chat/completions": {"messages": HELLO, "max_tokens": BUDGET},
    "/v1/completions": {"prompt": "Once", "max_tokens": BUDGET},
    "/v1/messages": {"messages": HELLO, "max_tokens": BUDGET},
    "/v1/responses": {"input": "Hello", "max_output_tokens": BUDGET},
    "/api/v1/chat": {"input": "Hello", "max_output_tokens": BUDGET},
    "/api/v0/chat/completions": {"messages": HELLO, "max_tokens": BUDGET},
    "/api/v0/completions": {"prompt": "Once", "max_tokens": BUDGET},
    # llama-server's own, forwarded: needs a model with fill-in-the-middle tokens
    "/infill": {"input_prefix": "def f(", "input_suffix": ")", "n_predict": BUDGET},
}
STOPPED = re.compile(r"task (\d+) \| stop processing: n_tokens = (\d+)")


def test_every_streaming_route_is_here() -> None:
    """The POST routes the router holds that stream: each is in STREAMS (a new one fails)."""
    from aiohttp import web

    from app.core.api.server import add_routes, routes

    app = web.Application()
    add_routes(app)
    posted = {path for method, path in routes(app) if method == "POST"}
    not_streaming = {
        "/api/v1/models/load",
        "/api/v1/models/unload",
        "/api/v1/models/download",
        "/api/v0/embeddings",
        "/api/v0/stats/reset",
        "/v1/embeddings",
        "/v1/messages/count_tokens",
        "/tokenize",
        "/detokenize",
        "/apply-template",
        "/v1/rerank",
        "/rerank",
        "/api/v0/runs",  # starts a FamilyLog run, answers 202 at once
        "/api/v0/models/rescan",
    }
    assert posted - not_streaming == set(STREAMS), sorted(posted - not_streaming)


def slots_busy(port: int, status) -> bool:
    """Whether llama-server's ``/slots`` (asked with the per-start key) shows one working."""
    r = httpx.get(server_url(port, "/slots", status), headers=auth_headers(status), trust_env=False)
    assert r.status_code == 200, r.text
    return any(s["is_processing"] for s in r.json())


@pytest.fixture(scope="module")
def fim_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("fim") / "coder.gguf", name="coder", fim=True)


@pytest.mark.parametrize("path", list(STREAMS))
async def test_a_client_that_leaves_mid_stream_frees_the_request_and_the_slot(
    start_api, fim_model: Path, path: str
) -> None:
    core = await start_api(
        LLAMA_CTX_SIZE=4096, LLAMA_EXTRA_ARGS="--ignore-eos", LLM_MODEL_GGUF=str(fim_model)
    )
    port = core.settings.LLAMA_LLM_PORT
    log = core.log_path(port)
    async with client(core) as c:
        assert (await c.post("/api/v1/models/load", json={"model": LLM})).status_code == 200
        status = core.manager.status(port)
        body = {"model": LLM, "stream": True, **STREAMS[path]}
        async with c.stream("POST", path, json=body) as r:
            assert r.status_code == 200, await r.aread()
            got = 0
            async for line in r.aiter_lines():
                got += line.startswith("data: ")
                if got == 5:  # mid-stream: the client goes away
                    assert slots_busy(port, status)  # llama-server is generating
                    break
        left = time.perf_counter()
        # nothing in flight in the app...
        await until(lambda: core.lifecycle.in_flight(port) == 0, 30)
        [row] = (await c.get("/api/v0/ps")).json()["models"]
        assert row["key"] == LLM and row["in_flight"] == 0
        # ...and llama-server cancelled the generation and freed the slot, short of its budget
        await until(lambda: not slots_busy(port, status), 30)
        freed = time.perf_counter() - left
        text = log.read_text()
        assert "cancel task" in text
        task, n_tokens = STOPPED.findall(text)[-1]
        assert f"cancel task, id_task = {task}" in text
        assert int(n_tokens) < BUDGET // 2, f"it generated {n_tokens} tokens: not cancelled"
        print(f"{path}: slot free {freed * 1000:.0f} ms after the client left, "
              f"{n_tokens} tokens in the slot")  # fmt: skip
        # the model serves the next request
        r = await c.post("/v1/chat/completions", json=chat(LLM, 4))
        assert r.status_code == 200, r.text
