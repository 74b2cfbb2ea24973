"""LM Studio's REST API against real llama-server processes and tiny GGUF models."""

from __future__ import annotations

import pytest

from app.core.notices import Level
from app.core.servers.states import ServerState
from tests.api import lmstudio_client
from tests.api.conftest import CTX, base_url, client, servers

VISION = "qwen/qwen3-vl-8b"
LLM = "google/gemma-3-12b"


async def test_seed_style_client_loads_polls_and_unloads(start_api, monkeypatch) -> None:
    core = await start_api()
    monkeypatch.setattr(lmstudio_client, "LM_STUDIO_BASE", base_url(core))
    assert await lmstudio_client.get_loaded_models() == []

    await lmstudio_client.load_model(VISION)
    assert await lmstudio_client.get_loaded_models() == [VISION]
    assert len(servers()) == 1
    port = core.settings.LLAMA_VISION_PORT
    assert core.manager.status(port).state is ServerState.READY

    await lmstudio_client.load_model(LLM)
    assert sorted(await lmstudio_client.get_loaded_models()) == sorted([VISION, LLM])

    await lmstudio_client.unload_model(VISION)
    await lmstudio_client.unload_model(LLM)
    assert await lmstudio_client.get_loaded_models() == []
    assert servers() == []


async def test_load_answers_lm_studio_shape_and_reuses_the_instance(start_api) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", json={"model": LLM})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["model_instance_id"] == LLM
        assert first["instance_id"] == LLM
        assert first["config"]["context_length"] == CTX
        assert first["load_time_seconds"] > 0
        pid = servers()[0].pid

        r = await c.post("/api/v1/models/load", json={"model": LLM, "config": {}})
        again = r.json()
        assert again["model_instance_id"] == LLM and again["load_time_seconds"] == 0
        assert [p.pid for p in servers()] == [pid]

        # Another context length is another config: the server is restarted with it.
        r = await c.post(
            "/api/v1/models/load", json={"model": LLM, "config": {"context_length": 256}}
        )
        assert r.status_code == 200, r.text
        assert r.json()["config"]["context_length"] == 256
        assert [p.pid for p in servers()] != [pid] and len(servers()) == 1

        listed = (await c.get("/api/v1/models")).json()["models"]
        llm = next(m for m in listed if m["key"] == LLM)
        # the instance's real values: llama-server's defaults for what the load left unset
        real = {"context_length": 256, "eval_batch_size": 2048, "offload_kv_cache_to_gpu": True}
        assert llm["loaded_instances"] == [{"id": LLM, "config": real}]

        r = await c.post("/api/v1/models/unload", json={"instance_id": LLM})
        assert r.status_code == 200 and r.json() == {"instance_id": LLM}
        assert servers() == []


async def test_list_v1_reads_the_gguf_header(start_api, tiny_model) -> None:
    core = await start_api(VISION_MMPROJ=str(tiny_model))  # a path only: never loaded here
    async with client(core) as c:
        r = await c.get("/api/v1/models")
    assert r.status_code == 200
    models = {m["key"]: m for m in r.json()["models"]}
    assert set(models) == {VISION, LLM}
    v = models[VISION]
    assert v["type"] == "llm" and v["format"] == "gguf"
    assert v["publisher"] == "qwen" and v["display_name"] == "tiny-llama"
    assert v["architecture"] == "llama"
    assert v["quantization"] == {"name": "F32", "bits_per_weight": 32.0}
    assert v["max_context_length"] == 2048
    assert v["size_bytes"] == 2 * tiny_model.stat().st_size  # model + (stand-in) mmproj
    assert v["params_string"].endswith("K")
    assert v["capabilities"]["vision"] is True
    assert models[LLM]["capabilities"]["vision"] is False
    assert v["loaded_instances"] == []


async def test_list_v0_shows_state(start_api, tiny_model) -> None:
    core = await start_api()
    async with client(core) as c:
        await c.post("/api/v1/models/load", json={"model": VISION})
        data = {m["id"]: m for m in (await c.get("/api/v0/models")).json()["data"]}
        assert data[VISION]["state"] == "loaded"
        assert data[VISION]["loaded_context_length"] == CTX
        # what it runs with, read from the command line it was started with
        assert data[VISION]["loaded_settings"]["ctx-size"] == CTX
        assert data[VISION]["loaded_settings"]["n-gpu-layers"] == core.settings.LLAMA_GPU_LAYERS
        assert data[LLM]["state"] == "not-loaded" and "loaded_settings" not in data[LLM]
        assert data[LLM]["object"] == "model" and data[LLM]["max_context_length"] == 2048
        one = (await c.get(f"/api/v0/models/{LLM}")).json()
        assert one["id"] == LLM and one["type"] == "llm"
        # Aliases: the file stem and the file name resolve to the same model.
        one = (await c.get(f"/api/v0/models/{tiny_model.name}")).json()
        assert one["id"] == VISION


async def test_errors_are_json_a_person_can_act_on(start_api) -> None:
    core = await start_api(LLM_MODEL_GGUF="/nowhere/missing-model.gguf", LLM_MODEL_ID="")
    async with client(core) as c:
        r = await c.get("/api/v2/whatever")
        assert r.status_code == 404 and "/api/v1/models" in r.json()["error"]["message"]

        r = await c.post("/api/v1/models/load", content=b"{not json")
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
        # NaN and Infinity: Python reads them, JSON (and llama-server) does not
        r = await c.post("/v1/completions", content=b'{"prompt": "x", "temperature": NaN}')
        assert r.status_code == 400 and "NaN is not a JSON value" in r.json()["error"]["message"]
        r = await c.post("/api/v1/models/load", content=b'{"model": -Infinity}')
        assert r.status_code == 400 and "-Infinity is not" in r.json()["error"]["message"]

        r = await c.post("/api/v1/models/load", json={"config": {}})
        assert r.status_code == 400 and VISION in r.json()["error"]["message"]

        r = await c.post("/api/v1/models/load", json={"model": "qwen/qwen3-vl-80b"})
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["code"] == "model_not_found"
        assert VISION in err["message"] and "missing-model" in err["message"]
        assert err["known_models"] == [VISION, "missing-model"]

        r = await c.post("/api/v1/models/load", json={"model": "missing-model"})
        assert r.status_code == 503
        assert "/nowhere/missing-model.gguf" in r.json()["error"]["message"]

        r = await c.post("/api/v1/models/unload", json={"instance_id": VISION})
        assert r.status_code == 404 and "Loaded: none" in r.json()["error"]["message"]

        r = await c.get("/api/v1/models/load")
        assert r.status_code == 405 and "error" in r.json()
    assert servers() == []


async def test_a_load_that_fails_answers_503_with_the_reason(start_api, corrupt_model) -> None:
    core = await start_api(LLM_MODEL_GGUF=str(corrupt_model), LLM_MODEL_ID="")
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", json={"model": "corrupt"})
    assert r.status_code == 503
    msg = r.json()["error"]["message"]
    assert "exited with code" in msg and "llama-server" in msg
    assert any(n.level is Level.ERROR and "corrupt" in n.title for n in core.notices.history)
    assert servers() == []


@pytest.mark.parametrize("ctx", ["big", -1, True])
async def test_bad_context_length_is_400(start_api, ctx) -> None:
    core = await start_api()
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", json={"model": LLM, "context_length": ctx})
    assert r.status_code == 400 and "context_length" in r.json()["error"]["message"]
