"""LM Studio's own Python SDK (``lmstudio`` from the package index) against the app: the
probe, the websocket namespaces, loads, predictions, embeddings, cancel and disconnect, two
clients at once, what is not served, and API_KEY. Real llama-server processes, tiny models.

The SDK is synchronous (its websockets run in a thread of their own), so each test runs its
SDK code in a worker thread while the app runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from pathlib import Path

import aiohttp
import httpx
import lmstudio as lms
import pytest
from lmstudio import LMStudioModelNotFoundError, LMStudioServerError

from app.core.api.lmstudio_ws import SDK
from app.core.app_core import AppCore
from app.core.servers.keys import auth_headers, server_url
from tests.api.conftest import CTX, base_url, client
from tests.support.tiny_model import TOOLS_TEMPLATE, write_tiny_bert, write_tiny_model
from tests.support.wait import until

VISION, LLM, EMBED, TOOLS = "qwen/qwen3-vl-8b", "google/gemma-3-12b", "tiny-embed", "tiny-tools"
# A grammar that never lets the tiny model stop: it generates until told to (cancel) or to
# maxTokens, a few ms per token, so "still generating" lasts seconds.
ENDLESS = {"type": "gbnf", "gbnfGrammar": "root ::= [a-z] root"}
TOKEN = "sk-lm-Abcd1234:Efgh5678Ijkl9012Mnop"  # LM Studio's API token form
# The SDK's sync bridge leaves a queue read unawaited when a client closes (its own code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:coroutine 'Queue.get' was never awaited:RuntimeWarning"
)


@pytest.fixture(scope="module")
def embed_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sdk-models")
    write_tiny_bert(root / f"{EMBED}.gguf", name=EMBED)
    return root


@pytest.fixture(scope="module")
def tools_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sdk-tools")
    write_tiny_model(root / f"{TOOLS}.gguf", seed=5, name=TOOLS, chat_template=TOOLS_TEMPLATE)
    return root


def host(core: AppCore) -> str:
    return base_url(core).removeprefix("http://")


def sdk_state(core: AppCore):
    assert core.api is not None and core.api.app is not None
    return core.api.app[SDK]


def slots_busy(core: AppCore, key: str = LLM) -> bool:
    """Whether the model's llama-server is generating now (asked from any thread)."""
    inst = core.lifecycle.ready(key)
    assert inst is not None
    r = httpx.get(
        server_url(inst.port, "/slots", inst.status),
        headers=auth_headers(inst.status),
        timeout=10,
    )
    return any(slot.get("is_processing") for slot in r.json())


async def idle(core: AppCore, key: str = LLM) -> None:
    """Nothing runs any more: no SDK work, no request held, llama-server not generating."""
    await until(lambda: sdk_state(core).running() == 0, 10)
    inst = core.lifecycle.ready(key)
    assert inst is not None
    await until(lambda: core.lifecycle.in_flight(inst.port) == 0, 10)
    await until(lambda: not slots_busy(core, key), 10)


# ── The probe and the guard ────────────────────────────────────────────────────
async def test_greeting_probe_and_guard(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.get("/lmstudio-greeting")
        assert r.status_code == 200 and r.json() == {"lmstudio": True}
        r = await c.get("/lmstudio-greeting", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        r = await c.get("/llm")  # a plain GET on a websocket path says what it is
        assert r.status_code == 426 and "LM Studio's SDK websocket" in r.json()["error"]["message"]
    assert await asyncio.to_thread(lms.Client.is_valid_api_host, host(core))
    # a web page cannot open the SDK's websocket (browsers send Origin)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(f"ws://{host(core)}/llm", headers={"Origin": "https://evil.example"})
        assert e.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(f"ws://{host(core)}/llm", headers={"Host": "evil.example"})
        assert e.value.status == 403


async def test_idle_client_stays_connected(start_api, monkeypatch) -> None:
    """The server pings every HEARTBEAT seconds; the SDK answers, so an idle client is kept
    (and one that stops answering would be dropped, not left open)."""
    import app.core.api.lmstudio_ws as ws_module

    monkeypatch.setattr(ws_module, "HEARTBEAT", 0.1)
    core = await start_api()

    def work() -> None:
        with lms.Client(host(core)) as c:
            assert len(c.list_downloaded_models()) == 2
            (conn,) = sdk_state(core).connections
            time.sleep(1.0)  # idle through ten heartbeats (the scenario, not a wait)
            assert sdk_state(core).connections == {conn}
            assert len(c.list_downloaded_models()) == 2

    await asyncio.to_thread(work)


async def test_app_stop_closes_sdk_connections(start_api) -> None:
    core = await start_api()
    async with aiohttp.ClientSession() as s, s.ws_connect(f"ws://{host(core)}/llm") as ws:
        await ws.send_json({"authVersion": 1, "clientIdentifier": "a", "clientPasskey": "b"})
        assert (await ws.receive_json(timeout=10))["success"] is True
        assert core.api is not None
        await core.api.stop()
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.GOING_AWAY


# ── Listing ────────────────────────────────────────────────────────────────────
async def test_list_downloaded_and_loaded(start_api, embed_models) -> None:
    core = await start_api(MODEL_DIRS=str(embed_models))

    def work() -> None:
        with lms.Client(host(core)) as c:
            listed = {m.model_key: m for m in c.list_downloaded_models()}
            assert set(listed) == {VISION, LLM, EMBED}
            assert listed[LLM].type == "llm" and listed[EMBED].type == "embedding"
            info = listed[LLM].info
            entry = core.catalogue.resolve(LLM)
            assert info.path == entry.path and info.size_bytes == entry.size_bytes
            assert info.architecture == "llama" and info.max_context_length == 2048
            assert info.vision is False and info.trained_for_tool_use is False
            assert [m.model_key for m in c.llm.list_downloaded()] == [VISION, LLM]
            assert [m.model_key for m in c.embedding.list_downloaded()] == [EMBED]
            assert c.list_loaded_models() == []
            llm = c.llm.model(LLM)  # get-or-load: loads it
            assert [m.identifier for m in c.list_loaded_models("llm")] == [LLM]
            info = llm.get_info()
            assert info.model_key == LLM and info.context_length == CTX
            assert llm.get_context_length() == CTX
            assert c.llm.model(LLM) == llm  # already loaded: the same instance
            assert c.list_loaded_models("embedding") == []

    await asyncio.to_thread(work)
    assert [i.key for i in core.lifecycle.loaded()] == [LLM]


# ── Predictions ────────────────────────────────────────────────────────────────
async def test_respond_stream_and_complete(start_api) -> None:
    core = await start_api()

    def work() -> None:
        with lms.Client(host(core)) as c:
            llm = c.llm.model(LLM)
            r = llm.respond("Hello", config={"maxTokens": 6, "temperature": 0.5})
            assert r.content and r.model_info.model_key == LLM
            s = r.stats
            assert s.stop_reason in ("maxPredictedTokensReached", "eosFound")
            assert 0 < s.predicted_tokens_count <= 6 and s.prompt_tokens_count > 0
            assert s.tokens_per_second > 0 and s.time_to_first_token_sec is not None
            assert r.load_config.context_length == CTX
            assert r.prediction_config.max_tokens == 6

            chat = lms.Chat("You are terse.")
            chat.add_user_message("Hi")
            pieces: list[str] = []
            stream = llm.respond_stream(chat, config={"maxTokens": 5})
            for fragment in stream:
                pieces.append(fragment.content)
            result = stream.result()
            assert pieces and "".join(pieces) == result.content
            # an end-of-stream token is predicted (and counted) but has no text
            eos = result.stats.stop_reason == "eosFound"
            assert result.stats.predicted_tokens_count == len(pieces) + eos

            # .complete(): the prompt as it is, with no chat template around it
            prompt = "The quick brown fox"
            done = llm.complete(prompt, config={"maxTokens": 4})
            assert done.stats.prompt_tokens_count == llm.count_tokens(prompt)
            assert r.stats.prompt_tokens_count > llm.count_tokens("Hello")  # templated
            assert llm.tokenize(prompt) == llm.tokenize([prompt])[0]
            assert "You are terse." in llm.apply_prompt_template(chat)

    await asyncio.to_thread(work)
    speed = core.api.stats.get(LLM)
    assert speed is not None and speed.requests >= 3  # fed like the REST routes


async def test_fragments_arrive_as_generated(start_api) -> None:
    """The first fragment reaches the client while llama-server is still generating."""
    core = await start_api(LLAMA_CTX_SIZE=8192)
    seen: dict = {}

    def work() -> None:
        with lms.Client(host(core)) as c:
            llm = c.llm.model(LLM)
            stream = llm.respond_stream(
                "Write", response_format=ENDLESS, config={"maxTokens": 1500}
            )
            for n, _fragment in enumerate(stream):
                if n == 0:
                    seen["busy"] = slots_busy(core)
                    stream.cancel()
            seen["stats"] = stream.result().stats

    await asyncio.to_thread(work)
    assert seen["busy"] is True
    assert seen["stats"].stop_reason == "userStopped"
    await idle(core)


async def test_cancel_mid_stream_stops_upstream(start_api) -> None:
    core = await start_api(LLAMA_CTX_SIZE=8192)
    seen: dict = {}

    def work() -> None:
        with lms.Client(host(core)) as c:
            llm = c.llm.model(LLM)
            stream = llm.respond_stream("Go", response_format=ENDLESS, config={"maxTokens": 1500})
            pieces = []
            for fragment in stream:
                pieces.append(fragment.content)
                if len(pieces) == 3:
                    stream.cancel()
            seen["result"] = stream.result()
            seen["pieces"] = pieces
            # the connection still works after a cancel
            seen["after"] = llm.respond("Hi", config={"maxTokens": 2}).content

    await asyncio.to_thread(work)
    result = seen["result"]
    assert result.stats.stop_reason == "userStopped"
    assert result.content == "".join(seen["pieces"])[: len(result.content)]
    assert len(seen["pieces"]) < 1500 and seen["after"]
    # llama-server stopped generating at once (left alone it would run for many seconds)
    await idle(core)


async def test_disconnect_mid_stream_leaves_nothing_running(start_api) -> None:
    core = await start_api(LLAMA_CTX_SIZE=8192)
    seen: dict = {}

    def work() -> None:
        c = lms.Client(host(core))
        llm = c.llm.model(LLM)
        stream = llm.respond_stream("Go", response_format=ENDLESS, config={"maxTokens": 1500})
        with pytest.raises(Exception):  # noqa: B017 (the SDK reports its own closed socket)
            for _fragment in stream:
                if "busy" not in seen:  # (fragments already received may still come)
                    seen["busy"] = slots_busy(core)
                    c.close()  # the client goes away mid-stream

    await asyncio.to_thread(work)
    gc.collect()  # the SDK's leftovers of the closed client go now, under this module's filter
    assert seen["busy"] is True
    await until(lambda: not sdk_state(core).connections, 10)
    await idle(core)
    assert core.lifecycle.ready(LLM) is not None  # the model stays loaded, idle


async def test_two_clients_at_once(start_api) -> None:
    core = await start_api(LLAMA_CTX_SIZE=8192)
    both_streaming = threading.Barrier(2, timeout=60)
    in_flight: list[int] = []
    results: list = []

    def one(name: str) -> None:
        with lms.Client(host(core)) as c:
            llm = c.llm.model(LLM)
            stream = llm.respond_stream(name, response_format=ENDLESS, config={"maxTokens": 1500})
            for n, _fragment in enumerate(stream):
                if n == 0:
                    both_streaming.wait()  # each waits until the other streams too
                    in_flight.append(core.lifecycle.in_flight(core.lifecycle.ready(LLM).port))
                    stream.cancel()
            results.append(stream.result())

    await asyncio.gather(asyncio.to_thread(one, "a"), asyncio.to_thread(one, "b"))
    assert len(results) == 2 and max(in_flight) == 2
    assert all(r.stats.stop_reason == "userStopped" for r in results)
    await idle(core)


async def test_structured_output_and_tools(start_api, tools_models) -> None:
    core = await start_api(MODEL_DIRS=str(tools_models))
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    tool = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
        },
    }

    def work() -> None:
        with lms.Client(host(core)) as c:
            llm = c.llm.model(LLM)
            r = llm.respond("Answer", response_format=schema, config={"maxTokens": 40})
            assert r.structured and isinstance(r.parsed, dict)
            assert isinstance(r.parsed["ok"], bool)
            # tool definitions reach llama-server: the model's template shows them
            (listed,) = [m for m in c.llm.list_downloaded() if m.model_key == TOOLS]
            assert listed.info.trained_for_tool_use is True
            model = c.llm.model(TOOLS)
            plain = model.respond("Hi", config={"maxTokens": 2})
            tools = {"type": "toolArray", "tools": [tool]}
            r = model.respond("Hi", config={"maxTokens": 2, "rawTools": tools})
            assert r.prediction_config.raw_tools is not None
            shown = model.count_tokens(json.dumps([tool], separators=(",", ":")))
            assert r.stats.prompt_tokens_count >= plain.stats.prompt_tokens_count + shown

    await asyncio.to_thread(work)


# ── Loading ────────────────────────────────────────────────────────────────────
async def test_load_with_config_ttl_identifier_and_unload(start_api) -> None:
    core = await start_api()
    progress: list[float] = []

    def work() -> None:
        with lms.Client(host(core)) as c:
            llm = c.llm.load_new_instance(
                LLM,
                "my-llm",
                ttl=30,
                config={
                    "contextLength": 1024,
                    "flashAttention": False,
                    "evalBatchSize": 64,
                    "gpu": {"ratio": 0.5},  # of the tiny model's 2 layers: 1
                },
                on_load_progress=progress.append,
            )
            assert llm.identifier == "my-llm"
            config = llm.get_load_config()
            assert config.context_length == 1024 and config.flash_attention is False
            assert config.eval_batch_size == 64 and config.gpu.ratio == 0.5
            assert [m.identifier for m in c.llm.list_loaded()] == ["my-llm"]
            assert llm.respond("Hi", config={"maxTokens": 2}).content
            info = llm.get_info()
            assert info.identifier == "my-llm" and info.model_key == LLM
            llm.unload()
            assert c.llm.list_loaded() == []

    inst_seen: list = []
    core.lifecycle.subscribe(lambda e: inst_seen.append(e.instance))
    await asyncio.to_thread(work)
    assert progress and progress[-1] == 1.0
    spec = inst_seen[-1].status.spec
    args = list(spec.extra_args)
    assert spec.ctx_size == 1024
    assert args[args.index("--batch-size") + 1] == "64"
    assert args[args.index("--flash-attn") + 1] == "off"
    assert spec.n_gpu_layers == 1
    assert any(i.ttl == 30 for i in inst_seen)
    assert core.lifecycle.ready(LLM) is None

    # get-or-load with a config and TTL (the SDK's default TTL is an hour)
    def again() -> None:
        with lms.Client(host(core)) as c:
            c.llm.model(LLM, ttl=20, config={"contextLength": 1024})

    await asyncio.to_thread(again)
    inst = core.lifecycle.ready(LLM)
    assert inst is not None and inst.ttl == 20 and inst.context_length == 1024
    async with client(core) as http:  # the REST API sees the same instance and config
        listed = {m["key"]: m for m in (await http.get("/api/v1/models")).json()["models"]}
        assert listed[LLM]["loaded_instances"][0]["config"]["context_length"] == 1024


async def test_embed(start_api, embed_models) -> None:
    core = await start_api(MODEL_DIRS=str(embed_models))

    def work() -> None:
        with lms.Client(host(core)) as c:
            model = c.embedding.model(EMBED)
            one = model.embed("hello world")
            two = model.embed(["hello", "world"])
            assert len(one) == 64 and len(two) == 2 and all(len(v) == 64 for v in two)
            assert two[0] == model.embed("hello")  # one call per string, in order
            assert model.count_tokens("hello") > 0
            assert [m.identifier for m in c.embedding.list_loaded()] == [EMBED]
            assert c.llm.list_loaded() == []
            # a model of the other kind: a clear error, not a wrong answer
            with pytest.raises(LMStudioServerError, match="is an embedding model"):
                c.llm.model(EMBED)
            with pytest.raises(LMStudioServerError, match="is an LLM"):
                c.embedding.model(LLM)

    await asyncio.to_thread(work)
    assert core.api.stats.get(EMBED).requests == 4


# ── What is not served, unknown models ─────────────────────────────────────────
async def test_unserved_endpoints_and_unknown_models(start_api, caplog) -> None:
    caplog.set_level("WARNING", logger="app.core.api.refused")
    core = await start_api()

    def work() -> None:
        with lms.Client(host(core)) as c:
            with pytest.raises(LMStudioServerError) as e:
                c.repository.search_models("qwen")
            text = str(e.value)
            assert "does not serve searching and downloading models through the SDK" in text
            assert "--download" in text and "MODEL_DIRS" in text  # what to do instead
            with pytest.raises(LMStudioServerError, match="image_url"):
                c.prepare_image(b"\x89PNG\r\n\x1a\n", "x.png")
            with pytest.raises(LMStudioModelNotFoundError) as e:
                c.llm.model("no/such-model")
            assert LLM in str(e.value)  # what can be loaded instead

    await asyncio.to_thread(work)
    assert "opened the 'repository' namespace, which the app does not serve" in caplog.text
    assert "rpc 'searchModels' failed" in caplog.text
    async with aiohttp.ClientSession() as s:  # a namespace LM Studio does not have either
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(f"ws://{host(core)}/nonsense")
        assert e.value.status == 404
    assert "API refused 404 not_found from 127.0.0.1" in caplog.text
    assert "GET /nonsense (a websocket: LM Studio's SDK namespaces are" in caplog.text

    # an endpoint no SDK version of ours knows gets an answer, never silence
    async with aiohttp.ClientSession() as s, s.ws_connect(f"ws://{host(core)}/system") as ws:
        await ws.send_json({"authVersion": 1, "clientIdentifier": "x", "clientPasskey": "y"})
        assert (await ws.receive_json(timeout=10)) == {"success": True}
        await ws.send_json({"type": "rpcCall", "endpoint": "requestShutdown", "callId": 7})
        answer = await ws.receive_json(timeout=10)
        assert answer["type"] == "rpcError" and answer["callId"] == 7
        assert "quit the app from the tray" in answer["error"]["cause"].lower()
        await ws.send_json({"type": "channelCreate", "endpoint": "nope", "channelId": 1})
        answer = await ws.receive_json(timeout=10)
        assert answer["type"] == "channelError" and "nope" in answer["error"]["title"]
        await ws.send_json({"type": "keepAlive"})
        assert (await ws.receive_json(timeout=10)) == {"type": "keepAliveAck"}


# ── API_KEY ────────────────────────────────────────────────────────────────────
async def test_api_key_for_the_sdk(start_api, caplog) -> None:
    caplog.set_level("WARNING", logger="app.core.api.refused")
    core = await start_api(API_KEY=TOKEN)

    def refused() -> None:
        with lms.Client(host(core)) as c:  # the probe needs no key
            with pytest.raises(LMStudioServerError) as e:
                c.list_downloaded_models()
            text = str(e.value)
            assert "Authentication failed" in text and "API_KEY" in text
            assert "api_token" in text  # how to send it

    def with_token() -> None:
        c = lms.Client(host(core))
        ident, passkey = TOKEN.removeprefix("sk-lm-").split(":")
        c._auth_details = c._format_auth_message(ident, passkey)  # what api_token= sends
        with c:
            assert {m.model_key for m in c.list_downloaded_models()} == {VISION, LLM}

    await asyncio.to_thread(refused)
    await asyncio.to_thread(with_token)
    assert "authentication refused" in caplog.text

    # lmstudio-js reads the refusal as a string (its schema): anything not Python gets one
    async with aiohttp.ClientSession() as s, s.ws_connect(f"ws://{host(core)}/llm") as ws:
        await ws.send_json({"authVersion": 1, "clientIdentifier": "guest:x", "clientPasskey": "y"})
        answer = await ws.receive_json(timeout=10)
        assert answer["success"] is False and isinstance(answer["error"], str)
        assert "API_KEY" in answer["error"]
        assert (await ws.receive(timeout=10)).type is aiohttp.WSMsgType.CLOSE

    async with client(core) as http:  # REST: Bearer or x-api-key
        assert (await http.get("/v1/models")).status_code == 401
        r = await http.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        assert (await http.get("/v1/models", headers={"x-api-key": TOKEN})).status_code == 200
        assert (await http.get("/v1/models", headers={"x-api-key": "wrong"})).status_code == 401


async def test_protocol_answers_bad_input(start_api) -> None:
    """Malformed packets get the SDK's error shape, never a crash or silence."""
    core = await start_api()
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"ws://{host(core)}/llm") as ws:
            await ws.send_str("not json")
            answer = await ws.receive_json(timeout=10)
            assert answer["success"] is False and "authentication packet" in answer["error"]
        async with s.ws_connect(f"ws://{host(core)}/llm") as ws:
            await ws.send_json({"authVersion": 1, "clientIdentifier": "a", "clientPasskey": "b"})
            assert (await ws.receive_json(timeout=10))["success"] is True
            await ws.send_str("[1, 2")
            assert (await ws.receive_json(timeout=10))["type"] == "communicationWarning"
            # NaN (Python's json.dumps writes it; llama-server would answer 500) and deep
            # nesting: the call still gets its answer, the connection lives on
            nan = '{"type": "rpcCall", "endpoint": "tokenize", "callId": 90, "parameter": NaN}'
            deep = '{"type": "rpcCall", "callId": 91, "parameter": ' + "[" * 300 + "]" * 300 + "}"
            for n, text, why in ((90, nan, "NaN is not a JSON value"), (91, deep, "deeper")):
                await ws.send_str(text)
                answer = await ws.receive_json(timeout=10)
                assert answer["type"] == "rpcError" and answer["callId"] == n, answer
                assert why in answer["error"]["title"]
            bad = [
                ("getModelInfo", None),
                ("getModelInfo", {"specifier": {"type": "query", "query": {"identifier": 5}}}),
                ("tokenize", {"specifier": {"type": "query", "query": {"identifier": LLM}}}),
                ("unloadModel", {"identifier": ""}),
            ]
            for n, (endpoint, param) in enumerate(bad):
                call = {"type": "rpcCall", "endpoint": endpoint, "callId": n, "parameter": param}
                await ws.send_str(json.dumps(call))
                answer = await ws.receive_json(timeout=10)
                assert answer["type"] == "rpcError" and answer["error"]["title"], answer
            await ws.send_json(
                {
                    "type": "channelCreate",
                    "endpoint": "loadModel",
                    "channelId": 1,
                    "creationParameter": {
                        "modelKey": LLM,
                        "loadConfigStack": {
                            "layers": [
                                {
                                    "layerName": "apiOverride",
                                    "config": {
                                        "fields": [{"key": "llm.load.contextLength", "value": "x"}]
                                    },
                                }
                            ]
                        },
                    },
                }
            )
            answer = await ws.receive_json(timeout=10)
            assert answer["type"] == "channelError" and "context_length" in answer["error"]["title"]
    assert core.lifecycle.loaded() == []  # nothing was loaded by a bad request


async def test_readme_example_runs(start_api, tmp_path, capsys) -> None:
    """The README's Python example, as written, against the app."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Using LM Studio's SDKs", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    embed_key = "nomic-embed-text-v1.5"
    assert embed_key in code and f'"{LLM}"' in code
    write_tiny_bert(tmp_path / f"{embed_key}.gguf", name=embed_key)
    core = await start_api(MODEL_DIRS=str(tmp_path))
    code = code.replace("127.0.0.1:1234", host(core))
    await asyncio.to_thread(exec, compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert f"{LLM} llm 2048" in out and f"{embed_key} embedding 512" in out
    assert "{'yes': " in out
    assert core.lifecycle.ready(embed_key) is not None
