"""Every client LM Studio serves, spoken to with the real clients (anthropic, openai, plain
REST as LM Studio's docs show it) against real llama-server processes and tiny models."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import anthropic
import openai
import psutil
import pytest

from app.core.presets.flags import read_args
from tests.api.conftest import base_url, client
from tests.support.tiny_model import write_tiny_bert, write_tiny_model
from tests.support.wait import until

LLM = "google/gemma-3-12b"
EMBED, RERANK, CODER = "tiny-embed", "tiny-reranker", "tiny-coder"


@pytest.fixture(scope="module")
def typed_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedding model (BERT) and a reranker (llama with rank pooling) in a model folder."""
    root = tmp_path_factory.mktemp("typed-models")
    write_tiny_bert(root / f"{EMBED}.gguf", name=EMBED)
    write_tiny_model(root / f"{RERANK}.gguf", seed=3, name=RERANK, pooling=4)
    write_tiny_model(root / f"{CODER}.gguf", seed=4, name=CODER, fim=True)
    return root


# ── Anthropic ──────────────────────────────────────────────────────────────────
async def test_anthropic_client_message_stream_count_and_errors(start_api) -> None:
    core = await start_api()
    c = anthropic.AsyncAnthropic(base_url=base_url(core), api_key="unused", max_retries=0)
    async with c:
        msg = await c.messages.create(
            model=LLM,
            max_tokens=6,
            messages=[{"role": "user", "content": "Hello"}],
            # greedy: llama-server's /v1/messages sometimes ends a sampled answer of the
            # random-weight model after 2-3 tokens with end_turn, ignore_eos or not
            extra_body={"ignore_eos": True, "temperature": 0},
        )  # JIT: the model was not loaded
        assert msg.type == "message" and msg.role == "assistant"
        assert msg.usage.output_tokens == 6 and msg.stop_reason == "max_tokens"
        assert msg.content[0].type == "text"

        async with c.messages.stream(
            model=LLM,
            max_tokens=5,
            messages=[{"role": "user", "content": "Hi"}],
            extra_body={"ignore_eos": True, "temperature": 0},
        ) as stream:
            deltas = [e async for e in stream if e.type == "content_block_delta"]
            final = await stream.get_final_message()
        assert deltas and final.usage.output_tokens == 5
        assert "".join(d.delta.text for d in deltas) == final.content[0].text

        n = await c.messages.count_tokens(model=LLM, messages=[{"role": "user", "content": "Hi"}])
        assert n.input_tokens > 0

        await core.lifecycle.unload(LLM)  # with one model loaded, any name would get it
        with pytest.raises(anthropic.NotFoundError) as e:
            await c.messages.create(
                model="no/such-model", max_tokens=4, messages=[{"role": "user", "content": "x"}]
            )
        assert e.value.body["type"] == "error"
        assert e.value.body["error"]["type"] == "not_found_error"
        assert "no/such-model" in e.value.body["error"]["message"]

        # input llama-server answers with a 500 (no messages): a 502 that says why, never 500
        async with client(core) as h:
            r = await h.post("/v1/messages", json={"model": LLM, "max_tokens": 4})
        assert r.status_code == 502, r.text
        error = r.json()["error"]
        assert error["type"] == "api_error" and "'messages' is required" in error["message"]


# ── OpenAI responses ───────────────────────────────────────────────────────────
async def test_openai_responses_plain_and_streamed(start_api) -> None:
    core = await start_api()
    async with openai.AsyncOpenAI(
        base_url=base_url(core) + "/v1", api_key="unused", max_retries=0
    ) as c:
        r = await c.responses.create(
            model=LLM, input="Hello", max_output_tokens=5, extra_body={"ignore_eos": True}
        )
        assert r.object == "response" and r.status == "completed"
        assert r.usage.output_tokens == 5 and isinstance(r.output_text, str)

        stream = await c.responses.create(
            model=LLM, input="Hi", max_output_tokens=4, stream=True, extra_body={"ignore_eos": True}
        )
        kinds = [e.type async for e in stream]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.output_text.delta" in kinds

        await core.lifecycle.unload(LLM)  # with one model loaded, any name would get it
        with pytest.raises(openai.NotFoundError) as e:
            await c.responses.create(model="no/such-model", input="x")
        assert e.value.body["code"] == "model_not_found"


# ── REST v0 as LM Studio's docs show it ────────────────────────────────────────
async def test_rest_v0_chat_completions_and_model(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.post(
            "/api/v0/chat/completions",
            json={
                "model": LLM,
                "messages": [
                    {"role": "system", "content": "Always answer in rhymes."},
                    {"role": "user", "content": "Introduce yourself."},
                ],
                "temperature": 0.7,
                "max_tokens": 6,
                "stream": False,
                "ignore_eos": True,
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == LLM and body["usage"]["completion_tokens"] == 6
        stats = body["stats"]
        assert stats["stop_reason"] == "maxPredictedTokensReached"
        assert stats["tokens_per_second"] > 0 and stats["generation_time"] > 0
        assert stats["time_to_first_token"] >= 0
        assert body["model_info"] == {
            "arch": "llama",
            "quant": "F32",
            "format": "gguf",
            "context_length": 512,
        }
        assert body["runtime"]["supported_formats"] == ["gguf"]
        assert body["runtime"]["version"]  # llama-server's build, from /props

        r = await c.post(
            "/api/v0/completions",
            json={
                "model": LLM,
                "prompt": "the meaning of life is",
                "max_tokens": 4,
                "ignore_eos": True,
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["stats"]["stop_reason"] == "maxPredictedTokensReached"
        assert r.json()["usage"]["completion_tokens"] == 4

        body = {
            "model": LLM,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 4,
            "stream": True,
            "ignore_eos": True,
        }
        chunks = []
        async with c.stream("POST", "/api/v0/chat/completions", json=body) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunks.append(json.loads(line[6:]))
        assert all(ch["model"] == LLM for ch in chunks)
        last = [ch for ch in chunks if "stats" in ch]
        assert len(last) == 1 and last[0]["stats"]["tokens_per_second"] > 0
        assert last[0]["model_info"]["arch"] == "llama"

        got = (await c.get(f"/api/v0/models/{LLM}")).json()
        assert got["state"] == "loaded" and got["type"] == "llm"
        speed = (await c.get(f"/api/v0/stats/{LLM}")).json()  # the live speed saw all three
        assert speed["requests"] == 3 and speed["tokens"] == 6 + 4 + 4


async def test_rest_v0_answers_name_the_runtime_and_its_build(start_api, llama_server_bin):
    """``runtime`` in every v0 answer (chat, completion, a stream's last chunk): LM Studio's
    name for the engine and llama-server's build, as the binary itself reports it."""
    out = subprocess.run([llama_server_bin, "--version"], capture_output=True, text=True)
    number, commit = re.search(r"version: (\d+) \((\w+)\)", out.stdout + out.stderr).groups()
    core = await start_api()
    hi = [{"role": "user", "content": "Hi"}]
    async with client(core) as c:
        answers = [
            (
                await c.post(
                    "/api/v0/chat/completions", json={"model": LLM, "messages": hi, "max_tokens": 2}
                )
            ).json(),
            (
                await c.post(
                    "/api/v0/completions", json={"model": LLM, "prompt": "a", "max_tokens": 2}
                )
            ).json(),
        ]
        body = {"model": LLM, "messages": hi, "max_tokens": 2, "stream": True}
        async with c.stream("POST", "/api/v0/chat/completions", json=body) as r:
            chunks = [json.loads(x[6:]) async for x in r.aiter_lines() if x.startswith("data: {")]
        answers.append(next(ch for ch in chunks if "runtime" in ch))
    for a in answers:
        assert a["runtime"]["name"] == "llama.cpp-llama-server"
        assert number in a["runtime"]["version"] and commit in a["runtime"]["version"]
        assert a["runtime"]["supported_formats"] == ["gguf"]


async def test_v1_chat_two_stateful_turns_and_stream(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.post(
            "/api/v1/chat",
            json={
                "model": LLM,
                "input": "My favorite color is blue.",
                "system_prompt": "Be brief.",
                "max_output_tokens": 5,
            },
        )
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["model_instance_id"] == LLM and first["response_id"].startswith("resp_")
        assert first["output"][0]["type"] == "message"
        assert first["stats"]["input_tokens"] > 0
        assert "model_load_time_seconds" in first["stats"]  # loaded for this request

        r = await c.post(
            "/api/v1/chat",
            json={
                "model": LLM,
                "input": "What color did I just mention?",
                "previous_response_id": first["response_id"],
                "max_output_tokens": 5,
            },
        )
        assert r.status_code == 200, r.text
        second = r.json()
        # the second turn carried the first: more input tokens than its own text
        assert second["stats"]["input_tokens"] > first["stats"]["input_tokens"]
        assert "model_load_time_seconds" not in second["stats"]
        assert second["response_id"] != first["response_id"]

        events = []
        body = {
            "model": LLM,
            "input": "Go on.",
            "stream": True,
            "previous_response_id": second["response_id"],
            "max_output_tokens": 4,
        }
        async with c.stream("POST", "/api/v1/chat", json=body) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        kinds = [e["type"] for e in events]
        assert kinds[0] == "chat.start" and kinds[-1] == "chat.end"
        assert kinds.index("message.start") < kinds.index("message.end")
        end = events[-1]["result"]
        text = "".join(e["content"] for e in events if e["type"] == "message.delta")
        assert end["output"][0]["content"] == text and end["response_id"].startswith("resp_")
        assert (await c.get(f"/api/v0/stats/{LLM}")).json()["requests"] == 3  # live speed

        r = await c.post(
            "/api/v1/chat", json={"model": LLM, "input": "x", "previous_response_id": "resp_nope"}
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "response_not_found"


# ── llama-server's endpoints, embedding and reranker models ───────────────────
async def test_llama_endpoints_embeddings_and_rerank(start_api, typed_models) -> None:
    core = await start_api(MODEL_DIRS=str(typed_models))
    async with client(core) as c:
        r = await c.post("/tokenize", json={"model": LLM, "content": "hello"})
        assert r.status_code == 200, r.text
        tokens = r.json()["tokens"]
        r = await c.post(f"/detokenize?model={LLM}", json={"tokens": tokens})
        assert r.json()["content"] == "hello"
        r = await c.post(
            "/apply-template", json={"model": LLM, "messages": [{"role": "user", "content": "Hi"}]}
        )
        assert "Hi" in r.json()["prompt"]
        # the tiny model has no fill-in-the-middle tokens: llama-server's own refusal
        r = await c.post("/infill", json={"model": LLM, "input_prefix": "a", "input_suffix": "b"})
        assert r.status_code == 501 and "Infill is not supported" in r.text
        infill = {"input_prefix": "def f(", "input_suffix": ")", "n_predict": 3, "ignore_eos": True}
        r = await c.post("/infill", json={"model": CODER, **infill})
        assert r.status_code == 200, r.text
        assert r.json()["tokens_predicted"] == 3
        assert core.lifecycle.ready(CODER) is not None  # loaded for it (JIT)

        r = await c.post("/v1/embeddings", json={"model": EMBED, "input": "hello world"})
        assert r.status_code == 200, r.text
        assert len(r.json()["data"][0]["embedding"]) == 64
        r = await c.post("/api/v0/embeddings", json={"model": EMBED, "input": ["a", "b"]})
        assert r.status_code == 200 and r.json()["model"] == EMBED
        assert len(r.json()["data"]) == 2

        r = await c.post(
            "/v1/rerank", json={"model": RERANK, "query": "a", "documents": ["ab", "cd", "ef"]}
        )
        assert r.status_code == 200, r.text
        assert sorted(x["index"] for x in r.json()["results"]) == [0, 1, 2]

        for path, model in (
            ("/v1/chat/completions", EMBED),
            ("/v1/embeddings", RERANK),
            ("/v1/rerank", LLM),
        ):
            body = {
                "model": model,
                "messages": [{"role": "user", "content": "x"}],
                "input": "x",
                "query": "x",
                "documents": ["y"],
            }
            r = await c.post(path, json=body)
            assert r.status_code == 400, (path, r.text)
            assert r.json()["error"]["code"] == "model_type_mismatch"
            assert model in r.json()["error"]["message"]
        r = await c.post(
            "/v1/messages",
            json={"model": EMBED, "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 400 and r.json()["type"] == "error"
        assert "embedding model" in r.json()["error"]["message"]

        listed = {m["key"]: m for m in (await c.get("/api/v1/models")).json()["models"]}
        assert listed[EMBED]["type"] == "embedding"
        v0 = (await c.get(f"/api/v0/models/{EMBED}")).json()
        assert v0["type"] == "embeddings"
    cmd = " ".join(psutil.Process(core.lifecycle.ready(EMBED).pid).cmdline())
    assert "--embeddings" in cmd
    assert "--reranking" in " ".join(psutil.Process(core.lifecycle.ready(RERANK).pid).cmdline())


# ── Load config and TTL ────────────────────────────────────────────────────────
async def test_load_config_flags_echo_reuse_and_busy_reload(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        want = {
            "context_length": 384,
            "flash_attention": False,
            "eval_batch_size": 128,
            "offload_kv_cache_to_gpu": False,
            "parallel": 2,
        }
        r = await c.post(
            "/api/v1/models/load", json={"model": LLM, **want, "echo_load_config": True}
        )
        assert r.status_code == 200, r.text
        assert r.json()["load_config"] == want
        inst = core.lifecycle.ready(LLM)
        cmd = psutil.Process(inst.pid).cmdline()
        ran = read_args(cmd)  # what the real process was started with
        assert (
            ran.set_fields().items()
            >= {
                "ctx_size": 384,
                "flash_attn": "off",
                "batch_size": 128,
                "kv_offload": False,
                "parallel": 2,
            }.items()
        ), cmd
        listed = {m["key"]: m for m in (await c.get("/api/v1/models")).json()["models"]}
        assert listed[LLM]["loaded_instances"][0]["config"] == want

        # the same config (old "config" object): reused
        r = await c.post("/api/v1/models/load", json={"model": LLM, "config": want})
        assert r.json()["load_time_seconds"] == 0 and "load_config" not in r.json()
        assert core.lifecycle.ready(LLM).pid == inst.pid

        # another config while busy: 409 with the reason, untouched
        async with core.lifecycle.holding(LLM):
            r = await c.post("/api/v1/models/load", json={"model": LLM, "eval_batch_size": 64})
        assert r.status_code == 409, r.text
        assert "eval_batch_size" in r.json()["error"]["message"]
        assert core.lifecycle.ready(LLM).pid == inst.pid

        # idle: loaded again with it
        r = await c.post("/api/v1/models/load", json={"model": LLM, "flash_attention": True})
        assert r.status_code == 200, r.text
        new = core.lifecycle.ready(LLM)
        assert new.pid != inst.pid
        assert read_args(psutil.Process(new.pid).cmdline()).flash_attn == "on"

        r = await c.post("/api/v1/models/load", json={"model": LLM, "parallel": "two"})
        assert r.status_code == 400 and "parallel" in r.json()["error"]["message"]


async def test_ttl_of_a_load_and_of_a_request_unloads_that_instance(start_api) -> None:
    core = await start_api(IDLE_UNLOAD_MINUTES=0)  # the default: never
    VISION = "qwen/qwen3-vl-8b"
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", json={"model": VISION})
        assert r.status_code == 200
        r = await c.post(
            "/v1/chat/completions",
            json={
                "model": LLM,
                "max_tokens": 2,
                "ttl": 0.5,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert r.status_code == 200, r.text
        assert core.lifecycle.ready(LLM).ttl == 0.5
        await until(lambda: core.lifecycle.ready(LLM) is None)
        assert core.lifecycle.ready(VISION) is not None  # no TTL of its own: kept

        r = await c.post("/api/v1/models/load", json={"model": LLM, "ttl": 0.5})
        assert r.status_code == 200
        await until(lambda: core.lifecycle.ready(LLM) is None)
        assert core.lifecycle.ready(VISION) is not None


async def test_load_exactly_as_lm_studios_docs_show_it(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.post(
            "/api/v1/models/load",
            headers={"Content-Type": "application/json"},
            content=json.dumps(
                {
                    "model": LLM,
                    "context_length": 16384,
                    "flash_attention": True,
                    "echo_load_config": True,
                }
            ),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["type"] == "llm" and body["instance_id"] == LLM
        assert body["status"] == "loaded" and body["load_time_seconds"] > 0
        cfg = body["load_config"]
        assert cfg["context_length"] == 16384 and cfg["flash_attention"] is True
        assert cfg["offload_kv_cache_to_gpu"] is True and cfg["eval_batch_size"] == 2048
        r = await c.post("/api/v1/models/unload", json={"instance_id": LLM})
        assert r.json() == {"instance_id": LLM}
