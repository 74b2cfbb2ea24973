"""LM Studio's download endpoints on the running app, against the stand-in hub: a download
polled to the end, the model then listed and answering a chat through the real
llama-server; already downloaded; refusals in the API's error shape."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.api.conftest import base_url
from tests.support import hub as hub_support
from tests.support.hub import LLM_REPO, StandInHub, serve_pair

hub = hub_support.hub  # the fixtures
hub_files = hub_support.hub_files


async def test_download_status_then_listed_and_chatting(
    start_api, hub: StandInHub, hub_files, tmp_path: Path
):
    serve_pair(hub, hub_files)
    core = await start_api(MODEL_DIRS=str(tmp_path / "models"), JIT_LOAD=True)
    url = base_url(core)
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        r = await c.post(
            "/api/v1/models/download", json={"model": LLM_REPO, "quantization": "Q8_0"}
        )
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["job_id"].startswith("job_") and job["status"] in ("downloading", "completed")
        assert job["total_size_bytes"] == hub_files["llm_q8"].stat().st_size
        assert job["started_at"].endswith("Z")

        async def status() -> dict:
            r = await c.get(f"/api/v1/models/download/status/{job['job_id']}")
            assert r.status_code == 200, r.text
            return r.json()

        # Poll as an LM Studio client does, until the job says it is done.
        deadline = time.monotonic() + 60
        done = await status()
        while done["status"] != "completed":
            assert done["status"] in ("downloading", "paused"), done
            assert time.monotonic() < deadline, done
            await asyncio.sleep(0.02)
            done = await status()
        assert done["downloaded_bytes"] == done["total_size_bytes"]
        assert done["completed_at"].endswith("Z") and done["model_key"] == "qwen/qwen3-8b"
        dest = tmp_path / "models" / LLM_REPO / "Qwen3-8B-Q8_0.gguf"
        assert dest.read_bytes() == hub_files["llm_q8"].read_bytes()

        listed = (await c.get("/api/v1/models")).json()["models"]
        assert "qwen/qwen3-8b" in [m["key"] for m in listed]
        chat = await c.post(
            "/v1/chat/completions",
            json={
                "model": "qwen/qwen3-8b",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4,
            },
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"] is not None

        again = await c.post(
            "/api/v1/models/download", json={"model": LLM_REPO, "quantization": "Q8_0"}
        )
        assert again.status_code == 200
        assert again.json() == {
            "status": "already_downloaded",
            "model": "Qwen3-8B-Q8_0.gguf",
            "model_key": "qwen/qwen3-8b",
        }
        everything = (await c.get("/api/v1/models/download/status")).json()
        assert set(everything) == {"downloading", "completed", "failed", "paused"}
        assert [j["job_id"] for j in everything["completed"]] == [job["job_id"]]


async def test_refusals_in_the_api_error_shape(
    start_api, hub: StandInHub, hub_files, tmp_path: Path
):
    serve_pair(hub, hub_files)
    hub.add_repo("meta/Gated-GGUF", {"Gated-Q4_K_M.gguf": hub_files["llm_q8"]}, gated="manual")
    core = await start_api(MODEL_DIRS=str(tmp_path / "models"))
    async with httpx.AsyncClient(base_url=base_url(core), timeout=30) as c:
        r = await c.post("/api/v1/models/download", json={})
        assert r.status_code == 400 and r.json()["error"]["code"] == "missing_model"
        r = await c.post("/api/v1/models/download", json={"model": "nobody/Nothing-GGUF"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await c.post(
            "/api/v1/models/download", json={"model": LLM_REPO, "quantization": "IQ1_S"}
        )
        assert (
            r.status_code == 404 and "Its quantizations: F32, Q8_0" in r.json()["error"]["message"]
        )
        r = await c.post("/api/v1/models/download", json={"model": "meta/Gated-GGUF"})
        assert r.status_code == 403
        err = r.json()["error"]
        assert err["code"] == "gated" and "accept its licence" in err["message"]
        r = await c.get("/api/v1/models/download/status/job_0000000000")
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
    assert core.downloads is not None and core.downloads.jobs() == []
