"""A preset's options as the real llama-server takes them: what its /props and /slots say it
runs with, the draft model started with -md, and the command line read back."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.core.presets.fields import ModelPreset
from app.core.presets.flags import preset_args, read_args
from app.core.servers.manager import LlamaServerManager
from app.core.servers.options import known_options


@pytest.fixture
async def manager(llama_server_bin: str, app_home: Path):
    m = LlamaServerManager(llama_server_bin, log_dir=app_home / "logs")
    yield m
    await m.shutdown()


async def get(port: int, path: str):
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(f"http://127.0.0.1:{port}{path}")
        r.raise_for_status()
        return r.json()


async def test_the_server_runs_with_the_presets_values(
    manager, llama_server_bin, tiny_model, tiny_model_b, port
) -> None:
    preset = ModelPreset.model_validate(
        {
            "ctx-size": "1024",
            "n-gpu-layers": "0",
            "parallel": "2",
            "batch-size": "256",
            "ubatch-size": "128",
            "temp": "0.25",
            "top-k": "7",
            "model-draft": str(tiny_model_b),  # the same vocabulary
            "draft-max": "4",
        }
    )
    extra = preset_args(preset, known_options(llama_server_bin))
    assert "--model-draft" in extra  # what llama-server calls -md
    st = await manager.load_model(
        str(tiny_model), port=port, ctx_size=preset.ctx_size, n_gpu_layers=0, extra_args=extra
    )
    props = await get(st.port, "/props")
    assert props["total_slots"] == 2
    # 1024 tokens shared by two slots
    assert props["default_generation_settings"]["n_ctx"] == 512
    params = props["default_generation_settings"]["params"]
    assert params["temperature"] == pytest.approx(0.25)
    assert params["top_k"] == 7
    slots = await get(st.port, "/slots")
    assert slots and all(s["speculative"] for s in slots)  # the draft model drafts
    async with httpx.AsyncClient(timeout=60) as c:
        r = await c.post(
            f"http://127.0.0.1:{st.port}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        )
    assert r.status_code == 200, r.text
    assert r.json()["timings"]["draft_n"] > 0
    # the command line read back gives what the preset set
    spec = manager.status(st.port).spec
    assert spec is not None
    ran = read_args(spec.command("llama-server"))
    assert ran.ctx_size == 1024 and ran.n_gpu_layers == 0 and ran.parallel == 2
    assert ran.model_draft == str(tiny_model_b) and ran.draft_max == 4
