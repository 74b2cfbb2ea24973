"""``POST /api/v1/chat`` as the README promises it, against the real llama-server: the
stream's LM Studio events in order (``model_load.*`` only when the request loaded the model,
``prompt_processing.*`` always), ``store: false``, the sampling options as llama-server
received them (its own log), ``context_length`` as the process runs it, and image input
items reaching llama-server as images."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import psutil

from tests.api.conftest import client
from tests.support.wait import until

LLM = "google/gemma-3-12b"
SAMPLE_PNG = Path(__file__).resolve().parents[2] / "resources" / "bench" / "sample.png"


async def _events(c, body: dict) -> list[dict]:
    out = []
    async with c.stream("POST", "/api/v1/chat", json={**body, "stream": True}) as r:
        assert r.status_code == 200, await r.aread()
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["type"] == event  # the SSE event name and its type agree
                out.append(data)
    return out


async def test_stream_events_in_lm_studios_order(start_api) -> None:
    core = await start_api(LLAMA_EXTRA_ARGS="--ignore-eos")  # exactly max_output_tokens
    assert core.lifecycle.ready(LLM) is None
    body = {"model": LLM, "input": "Hello", "max_output_tokens": 4}
    async with client(core) as c:
        first = await _events(c, body)  # this request loads the model
        kinds = [e["type"] for e in first]
        assert kinds == [
            "chat.start",
            "model_load.start",
            "model_load.end",
            "prompt_processing.start",
            "prompt_processing.end",
            "message.start",
            *["message.delta"] * 4,
            "message.end",
            "chat.end",
        ], kinds
        load_end, end = first[2], first[-1]["result"]
        assert load_end["model_instance_id"] == LLM and load_end["load_time_seconds"] > 0
        assert end["stats"]["model_load_time_seconds"] == load_end["load_time_seconds"]
        assert end["stats"]["total_output_tokens"] == 4
        text = "".join(e["content"] for e in first if e["type"] == "message.delta")
        assert end["output"] == [{"type": "message", "content": text}]
        assert end["response_id"].startswith("resp_")  # stored by default

        again = await _events(c, {**body, "store": False})  # loaded now: no model_load
        kinds = [e["type"] for e in again]
        assert "model_load.start" not in kinds and "model_load.end" not in kinds
        assert kinds[:3] == ["chat.start", "prompt_processing.start", "prompt_processing.end"]
        result = again[-1]["result"]
        assert "model_load_time_seconds" not in result["stats"]
        assert "response_id" not in result  # store: false keeps nothing


async def test_store_false_keeps_nothing_to_continue_from(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.post(
            "/api/v1/chat",
            json={"model": LLM, "input": "Hi", "max_output_tokens": 2, "store": False},
        )
        assert r.status_code == 200, r.text
        assert "response_id" not in r.json()
        kept = await c.post(
            "/api/v1/chat", json={"model": LLM, "input": "Hi", "max_output_tokens": 2}
        )
        rid = kept.json()["response_id"]
        r = await c.post(
            "/api/v1/chat",
            json={
                "model": LLM,
                "input": "More",
                "previous_response_id": rid,
                "max_output_tokens": 2,
            },
        )
        assert r.status_code == 200, r.text  # what was stored can be continued


SAMPLING = {"temperature": 0.33, "top_p": 0.77, "top_k": 7, "min_p": 0.11, "repeat_penalty": 1.23}


async def test_sampling_options_reach_llama_server(start_api) -> None:
    core = await start_api(LLAMA_EXTRA_ARGS="--ignore-eos")
    async with client(core) as c:
        body = {"model": LLM, "input": "Hello", "max_output_tokens": 3, **SAMPLING}
        r = await c.post("/api/v1/chat", json=body)
        assert r.status_code == 200, r.text
    assert r.json()["stats"]["total_output_tokens"] == 3  # max_output_tokens: max_tokens
    log = core.log_path(core.settings.LLAMA_LLM_PORT)
    await until(lambda: "temp = 0.330" in log.read_text())
    # llama-server's own account of the request's sampler (it logs it at -lv 4)
    params = log.read_text().rsplit("sampler params:", 1)[1].split(" I ", 1)[0]
    for name, value in (
        ("repeat_penalty", "1.230"),
        ("top_k", "7"),
        ("top_p", "0.770"),
        ("min_p", "0.110"),
        ("temp", "0.330"),
    ):
        assert re.search(rf"\b{name} = {value}\b", params), (name, params)


async def test_context_length_loads_the_model_with_it(start_api) -> None:
    core = await start_api()  # LLAMA_CTX_SIZE 512
    async with client(core) as c:
        body = {"model": LLM, "input": "Hi", "max_output_tokens": 2, "context_length": 256}
        r = await c.post("/api/v1/chat", json=body)
        assert r.status_code == 200, r.text
        inst = core.lifecycle.ready(LLM)
        cmd = psutil.Process(inst.pid).cmdline()  # the process itself runs with it
        assert cmd[cmd.index("--ctx-size") + 1] == "256"
        listed = (await c.get("/api/v1/models")).json()["models"]
        [model] = [m for m in listed if m["key"] == LLM]
        assert model["loaded_instances"][0]["config"]["context_length"] == 256
        r = await c.post("/api/v1/chat", json={**body, "context_length": "big"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "context_length"


async def test_image_input_items_reach_llama_server_as_images(start_api) -> None:
    """A text item and an image item: llama-server gets an image part (the tiny model has
    no projector, so it says so, passed on as a 502 with its reason, never a 500)."""
    core = await start_api()
    data_url = "data:image/png;base64," + base64.b64encode(SAMPLE_PNG.read_bytes()).decode()
    items = [
        {"type": "message", "content": "What is this?"},
        {"type": "image", "data_url": data_url},
    ]
    async with client(core) as c:
        r = await c.post(
            "/api/v1/chat", json={"model": LLM, "input": items, "max_output_tokens": 2}
        )
        assert r.status_code == 502, r.text
        assert "image input is not supported" in r.json()["error"]["message"]
        # text items alone are one user message: answered
        text = [{"type": "message", "content": "Hi"}, {"type": "text", "content": "there"}]
        r = await c.post("/api/v1/chat", json={"model": LLM, "input": text, "max_output_tokens": 2})
        assert r.status_code == 200, r.text
        r = await c.post("/api/v1/chat", json={"model": LLM, "input": [{"type": "video"}]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "input"
