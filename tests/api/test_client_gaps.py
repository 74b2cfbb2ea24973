"""The smaller gaps real clients hit: LM Studio's capabilities array, ``x-api-key``,
``GET /v1/models/{id}``, stateful ``/v1/responses``, the one-loaded-model fallback by type,
and a log line for every refused request. Real clients (openai, anthropic), real servers."""

from __future__ import annotations

import logging
from pathlib import Path

import anthropic
import openai
import pytest

from tests.api.conftest import base_url, chat, client
from tests.support.tiny_model import TOOLS_TEMPLATE, write_tiny_bert, write_tiny_model

VISION, LLM, EMBED, TOOLS = "qwen/qwen3-vl-8b", "google/gemma-3-12b", "tiny-embed", "tiny-tools"
KEY = "family-secret"


@pytest.fixture(scope="module")
def gap_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gap-models")
    write_tiny_bert(root / f"{EMBED}.gguf", name=EMBED)
    write_tiny_model(root / f"{TOOLS}.gguf", seed=5, name=TOOLS, chat_template=TOOLS_TEMPLATE)
    return root


async def test_v0_models_capabilities(start_api, gap_models, tiny_model) -> None:
    core = await start_api(MODEL_DIRS=str(gap_models), VISION_MMPROJ=str(tiny_model))
    async with client(core) as c:
        data = {m["id"]: m for m in (await c.get("/api/v0/models")).json()["data"]}
        one = (await c.get(f"/api/v0/models/{TOOLS}")).json()
    assert data[VISION]["capabilities"] == ["vision"]
    assert data[TOOLS]["capabilities"] == ["tool_use"] == one["capabilities"]
    assert data[LLM]["capabilities"] == [] and data[EMBED]["capabilities"] == []


async def test_v1_model_by_id(start_api) -> None:
    core = await start_api()
    oa = openai.AsyncOpenAI(base_url=base_url(core) + "/v1", api_key="x", max_retries=0)
    async with oa:
        m = await oa.models.retrieve(LLM)
        assert m.id == LLM and m.object == "model" and m.owned_by == "google"
        assert (await oa.models.retrieve("tiny-other-F32")).id == LLM  # an alias: the key
        with pytest.raises(openai.NotFoundError) as e:
            await oa.models.retrieve("no/such")
        assert LLM in str(e.value)


async def test_api_key_in_x_api_key(start_api) -> None:
    core = await start_api(API_KEY=KEY)
    good = anthropic.AsyncAnthropic(base_url=base_url(core), api_key=KEY, max_retries=0)
    bad = anthropic.AsyncAnthropic(base_url=base_url(core), api_key="nope", max_retries=0)
    async with good, bad:  # Anthropic's clients send the key as x-api-key
        msg = await good.messages.create(
            model=LLM, max_tokens=2, messages=[{"role": "user", "content": "Hi"}]
        )
        assert msg.role == "assistant"
        with pytest.raises(anthropic.AuthenticationError) as e:
            await bad.messages.create(
                model=LLM, max_tokens=2, messages=[{"role": "user", "content": "Hi"}]
            )
        assert "x-api-key" in str(e.value)


async def test_responses_keep_previous_response_id(start_api) -> None:
    core = await start_api()
    oa = openai.AsyncOpenAI(base_url=base_url(core) + "/v1", api_key="x", max_retries=0)
    async with oa:
        first = await oa.responses.create(model=LLM, input="Hello there", max_output_tokens=4)
        alone = await oa.responses.create(model=LLM, input="And now?", max_output_tokens=4)
        second = await oa.responses.create(
            model=LLM, input="And now?", previous_response_id=first.id, max_output_tokens=4
        )
        # the first turn and its answer went along with the second
        assert second.usage.input_tokens > alone.usage.input_tokens + 4
        # streamed, continuing the second; the stream's result is kept as well
        stream = await oa.responses.create(
            model=LLM,
            input="Go on",
            previous_response_id=second.id,
            max_output_tokens=3,
            stream=True,
        )
        events = [e async for e in stream]
        third = next(e.response for e in events if e.type == "response.completed")
        assert any(e.type == "response.output_text.delta" for e in events)
        assert third.usage.input_tokens > second.usage.input_tokens
        fourth = await oa.responses.create(
            model=LLM, input="More", previous_response_id=third.id, max_output_tokens=2
        )
        assert fourth.usage.input_tokens > third.usage.input_tokens

        unkept = await oa.responses.create(model=LLM, input="x", store=False, max_output_tokens=2)
        for missing in (unkept.id, "resp_nope"):
            with pytest.raises(openai.BadRequestError) as e:
                await oa.responses.create(
                    model=LLM, input="y", previous_response_id=missing, max_output_tokens=2
                )
            assert missing in str(e.value) and "not found" in str(e.value)


async def test_one_loaded_model_fallback_only_of_the_right_type(start_api, gap_models) -> None:
    core = await start_api(MODEL_DIRS=str(gap_models))
    async with client(core) as c:
        assert (await c.post("/api/v1/models/load", json={"model": EMBED})).status_code == 200
        # an embedding model cannot answer a chat: the error names both
        r = await c.post("/v1/chat/completions", json=chat("gpt-4o-mini"))
        assert r.status_code == 404
        message = r.json()["error"]["message"]
        assert "gpt-4o-mini" in message and f"Loaded now: {EMBED} (embedding)" in message
        assert "none of which serves /v1/chat/completions" in message
        # but it answers embeddings asked for under another name
        r = await c.post("/v1/embeddings", json={"model": "text-embedding-3", "input": "hi"})
        assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 64
        assert core.api.stats.get(EMBED).requests == 1
        # with an LLM loaded beside it, a chat under another name goes to the LLM
        await c.post("/api/v1/models/load", json={"model": LLM})
        r = await c.post("/v1/chat/completions", json=chat("gpt-4o-mini", max_tokens=2))
        assert r.status_code == 200 and core.api.stats.get(LLM).requests == 1


async def test_refused_requests_leave_one_log_line(start_api, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="app.core.api.refused")
    core = await start_api(API_KEY=KEY)
    async with client(core, headers={"User-Agent": "probe/1.0"}) as c:
        await c.get("/nope", headers={"Authorization": f"Bearer {KEY}"})
        await c.get("/v1/models")  # no key
        await c.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert (await c.get("/v1/models", headers={"x-api-key": KEY})).status_code == 200
        await c.get("/nope", headers={"x-api-key": KEY})  # again within the minute
    lines = [r.getMessage() for r in caplog.records if r.name == "app.core.api.refused"]
    assert len(lines) == 3, lines  # the guard's refusals once each, the 404 once a minute
    assert lines[0].startswith("API refused 404 not_found from 127.0.0.1: No such endpoint")
    assert "API refused 401 invalid_api_key from 127.0.0.1: Missing or wrong API key" in lines[1]
    assert "API refused 403 origin_not_allowed from 127.0.0.1: Refused: requests" in lines[2]
    assert "(GET /nope, probe/1.0)" in lines[0]
    assert all("(GET /v1/models, probe/1.0)" in line for line in lines[1:])
