"""RUN_MODE and the memory estimate behind ``auto``; one end-to-end run of ``auto``."""

from __future__ import annotations

import psutil

from app.config import Settings
from app.core.api.server import ApiServer
from app.core.app_core import AppCore
from app.core.models.catalogue import Catalogue
from app.core.models.placement import OVERHEAD_BYTES, SAFETY_FACTOR, Placement, estimate_need
from app.core.models.profiles import profiles_from_settings
from app.paths import AppPaths
from tests.api.conftest import chat, client, servers

GB = 1024**3


def _setup(tiny_model, tiny_model_b, **over):
    s = Settings(
        _env_file=None,
        VISION_MODEL_GGUF=str(tiny_model),
        LLM_MODEL_GGUF=str(tiny_model_b),
        LLAMA_CTX_SIZE=4096,
        **over,
    )
    return s, Catalogue(profiles_from_settings(s))


def test_estimate_is_file_plus_kv_cache_with_margin(tiny_model, tiny_model_b) -> None:
    _, cat = _setup(tiny_model, tiny_model_b)
    e = cat.entries()[0]
    kv = e.info.kv_cache_bytes(4096)
    assert kv > 0
    assert estimate_need(e, 4096) == int((e.size_bytes + kv) * SAFETY_FACTOR) + OVERHEAD_BYTES
    # 0 = the model's own context length, from the header.
    assert estimate_need(e, 0) == estimate_need(e, e.info.context_length)


def test_fixed_modes(tiny_model, tiny_model_b) -> None:
    for mode in ("switch", "parallel"):
        s, cat = _setup(tiny_model, tiny_model_b, RUN_MODE=mode)
        d = Placement(s, gpu_free=lambda: 0).decide(cat.entries(), [])
        assert d.mode == mode
    s, cat = _setup(tiny_model, tiny_model_b, LLAMA_PORT=9000)
    vision = cat.profiles()[0]
    p = Placement(s)
    assert p.port_for(vision, "switch") == 9000
    assert p.port_for(vision, "parallel") == s.LLAMA_VISION_PORT


def test_auto_uses_free_gpu_memory(tiny_model, tiny_model_b) -> None:
    s, cat = _setup(tiny_model, tiny_model_b, RUN_MODE="auto")
    entries = cat.entries()
    need = sum(estimate_need(e, 4096) for e in entries)
    assert Placement(s, gpu_free=lambda: need).decide(entries, []).mode == "parallel"
    d = Placement(s, gpu_free=lambda: need - 1).decide(entries, [])
    assert d.mode == "switch" and "free GPU memory" in d.reason and "does not cover" in d.reason
    # Memory our loaded model holds counts as available to the pair.
    held = [(entries[0], 4096)]
    free = need - estimate_need(entries[0], 4096)
    assert Placement(s, gpu_free=lambda: free).decide(entries, held).mode == "parallel"


def test_auto_falls_back_to_ram(tiny_model, tiny_model_b) -> None:
    s, cat = _setup(tiny_model, tiny_model_b, RUN_MODE="auto")
    d = Placement(s, gpu_free=lambda: None).decide(cat.entries(), [])
    need = sum(estimate_need(e, 4096) for e in cat.entries())
    expect = "parallel" if psutil.virtual_memory().available >= need else "switch"
    assert d.mode == expect and "available RAM" in d.reason
    s, cat = _setup(tiny_model, tiny_model_b, RUN_MODE="auto", LLAMA_GPU_LAYERS=0)
    d = Placement(s, gpu_free=lambda: 0).decide(cat.entries(), [])  # CPU only: GPU is moot
    assert "available RAM" in d.reason


def test_auto_with_one_model_is_parallel(tiny_model) -> None:
    s = Settings(_env_file=None, LLM_MODEL_GGUF=str(tiny_model), RUN_MODE="auto")
    cat = Catalogue(profiles_from_settings(s))
    assert Placement(s, gpu_free=lambda: 0).decide(cat.entries(), []).mode == "parallel"


async def test_auto_switches_when_memory_is_short(api_settings) -> None:
    s = api_settings(RUN_MODE="auto")
    core = AppCore(s, AppPaths.resolve().ensure())
    core.api = ApiServer(core, gpu_free=lambda: 1)  # 1 byte of free GPU memory
    core.add_service(core.api)
    await core.start()
    try:
        async with client(core) as c:
            for model in (s.VISION_MODEL_ID, s.LLM_MODEL_ID):
                r = await c.post("/v1/chat/completions", json=chat(model))
                assert r.status_code == 200, r.text
                assert list(core.manager.get_loaded_models()) == [s.LLAMA_PORT]
        assert len(servers()) == 1
    finally:
        await core.stop()
