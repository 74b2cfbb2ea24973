"""Fixtures for the API tests: a started core with the API on a free port, real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.core.app_core import AppCore
from tests.conftest import free_port
from tests.support.app import AS_APP, make_core

CTX = 512


@pytest.fixture
def api_settings(llama_server_bin: str, tiny_model: Path, tiny_model_b: Path):
    """Settings for two real tiny models on free ports; keyword overrides win."""

    def make(**over) -> Settings:
        base = dict(
            LLAMA_SERVER_PATH=llama_server_bin,
            VISION_MODEL_GGUF=str(tiny_model),
            VISION_MODEL_ID="qwen/qwen3-vl-8b",
            LLM_MODEL_GGUF=str(tiny_model_b),
            LLM_MODEL_ID="google/gemma-3-12b",
            LLAMA_CTX_SIZE=CTX,
            LLAMA_PORT=free_port(),
            LLAMA_VISION_PORT=free_port(),
            LLAMA_LLM_PORT=free_port(),
            API_PORT=free_port(),
            RUN_MODE="parallel",
        )
        base.update(over)
        return Settings(_env_file=None, **base)  # type: ignore[call-arg]

    return make


@pytest.fixture
async def start_api(api_settings) -> AsyncIterator[Callable]:
    """``await start_api(**settings)`` → a started core with its API; stopped at teardown."""
    cores: list[AppCore] = []

    async def start(**over) -> AppCore:
        core = make_core(api_settings(**over), **AS_APP)
        cores.append(core)
        await core.start()
        return core

    yield start
    for core in cores:
        await core.stop()


def base_url(core: AppCore) -> str:
    assert core.api is not None and core.api.url, core.api and core.api.error
    return core.api.url


def client(core: AppCore, **kw) -> httpx.AsyncClient:
    kw.setdefault("timeout", 60)
    return httpx.AsyncClient(base_url=base_url(core), trust_env=False, **kw)


def servers() -> list:
    """The llama-server processes this test process runs."""
    from tests.conftest import llama_children

    out = []
    for p in llama_children():
        try:
            if "llama-server" in p.name():
                out.append(p)
        except Exception:
            pass
    return out


def chat(model: str | None, max_tokens: int = 8, **extra) -> dict:
    body = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": max_tokens}
    if model is not None:
        body["model"] = model
    body.update(extra)
    return body
