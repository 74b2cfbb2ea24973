"""The ``embedding`` namespace: what it shares with ``llm``, plus ``embedString`` (the SDK's
``embed()`` sends one call per string)."""

from __future__ import annotations

from typing import Any

from app.core.api.lmstudio_ws.errors import SdkError
from app.core.api.lmstudio_ws.instances import SHARED_RPC, ask, param_of, text_of
from app.core.api.lmstudio_ws.loading import get_or_load, load_model
from app.core.api.lmstudio_ws.models import resolve, using
from app.core.api.lmstudio_ws.state import Session


async def embed_string(s: Session, param: Any) -> dict[str, Any]:
    p = param_of(param)
    text = text_of(p)
    entry = resolve(s, p.get("modelSpecifier"))
    async with using(s, entry) as inst:
        data = await ask(s, inst, "/v1/embeddings", {"input": text, "model": entry.key})
    s.c.stats.record(entry.key, None)  # a request served (embeddings carry no timings)
    rows = data.get("data")
    vector = rows[0].get("embedding") if isinstance(rows, list) and rows else None
    if not isinstance(vector, list):
        raise SdkError(f"llama-server sent no embedding for {entry.key}")
    return {"embedding": vector}


RPC = {**SHARED_RPC, "embedString": embed_string}
CHANNELS = {"loadModel": load_model, "getOrLoad": get_or_load}
