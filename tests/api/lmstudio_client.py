"""A client written the way FamilyLog's LM Studio ``model_manager.py`` is (the seed's section 2).

Load with ``POST /api/v1/models/load {"model": id}``, poll the loaded models until the
model is listed, unload with ``POST /api/v1/models/unload {"instance_id": id}``. Only
``LM_STUDIO_BASE`` differs per test (the API listens on a free port).
"""

from __future__ import annotations

import asyncio

import httpx

LM_STUDIO_BASE = "http://127.0.0.1:1234"


def _urls() -> tuple[str, str, str]:
    return (
        f"{LM_STUDIO_BASE}/api/v1/models/load",
        f"{LM_STUDIO_BASE}/api/v1/models/unload",
        f"{LM_STUDIO_BASE}/api/v1/models",
    )


async def get_loaded_models() -> list[str]:
    _, _, models_url = _urls()
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(models_url)
        r.raise_for_status()
        return [inst["id"] for m in r.json()["models"] for inst in m.get("loaded_instances", [])]


async def load_model(model_id: str, wait_seconds: int = 60) -> None:
    load_url, _, _ = _urls()
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(load_url, json={"model": model_id})
        r.raise_for_status()
    for _ in range(wait_seconds * 2):
        if model_id in await get_loaded_models():
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{model_id} did not load within {wait_seconds} s")


async def unload_model(model_id: str) -> None:
    _, unload_url, _ = _urls()
    async with httpx.AsyncClient(timeout=10) as client:
        await client.post(unload_url, json={"instance_id": model_id})
