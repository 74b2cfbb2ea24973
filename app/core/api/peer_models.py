"""The peers' models in the app's lists (``GET /api/v1/models``, ``/api/v0/models``,
``/v1/models``): each under ``<peer>/<model>``, with its type and state as the peer said,
and ``peer`` (its name, whether it is online, the app it comes from)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.core.api.common import ApiContext
from app.core.machines.peers import CHAIN_HEADER, PeerModel, chain_of


def listed(c: ApiContext, request: web.Request) -> list[PeerModel]:
    """The peers' models to list for ``request``: none for an app already in its chain."""
    if c.peers is None:
        return []
    chain = chain_of(request.headers.get(CHAIN_HEADER))
    return c.peers.models(chain)


def _peer(c: ApiContext, m: PeerModel) -> dict[str, Any]:
    assert c.peers is not None
    st = c.peers.statuses.get(m.peer)
    instance = m.via or (st.instance if st else None)
    online = st is not None and st.online
    return {"name": m.peer, "state": "online" if online else "offline", "instance": instance}


_V1_FIELDS = (
    "display_name",
    "architecture",
    "quantization",
    "size_bytes",
    "params_string",
    "max_context_length",
    "format",
    "capabilities",
    "description",
)
_V0_FIELDS = ("arch", "compatibility_type", "quantization", "max_context_length")


def model_v1(c: ApiContext, m: PeerModel) -> dict[str, Any]:
    """A peer's model in ``GET /api/v1/models``: what the peer said of it, named by its key
    here (an LM Studio-compatible peer's own entry; else what a v0 or OpenAI entry tells)."""
    info = m.info
    quant = info.get("quantization")
    out: dict[str, Any] = {
        "type": "embedding" if m.type == "embeddings" else "llm",
        "publisher": m.peer,
        "display_name": m.id,
        "architecture": info.get("arch"),
        "quantization": {"name": quant, "bits_per_weight": None}
        if isinstance(quant, str)
        else None,
        "size_bytes": None,
        "params_string": None,
        "max_context_length": info.get("max_context_length"),
        "format": "gguf",
        "capabilities": {"vision": m.type == "vlm", "trained_for_tool_use": False},
        "description": None,
    }
    if "key" in info:  # the peer's own v1 entry
        out.update({k: info[k] for k in _V1_FIELDS if k in info})
    loaded = [
        {**i, "id": f"{m.peer}/{i.get('id', m.id)}"}
        for i in info.get("loaded_instances") or []
        if isinstance(i, dict)
    ]
    if not loaded and m.state == "loaded":
        loaded = [{"id": m.key, "config": {}}]
    return {**out, "key": m.key, "loaded_instances": loaded, "peer": _peer(c, m)}


def model_v0(c: ApiContext, m: PeerModel) -> dict[str, Any]:
    """A peer's model in ``GET /api/v0/models``."""
    info = m.info
    quant = info.get("quantization")
    out: dict[str, Any] = {
        "object": "model",
        "type": m.type,
        "publisher": m.peer,
        "arch": info.get("architecture"),
        "compatibility_type": "gguf",
        "quantization": quant.get("name") if isinstance(quant, dict) else None,
        "max_context_length": info.get("max_context_length"),
    }
    if "state" in info:  # the peer's own v0 entry
        out.update({k: info[k] for k in _V0_FIELDS if k in info})
    state = m.state if m.state in ("loaded", "not-loaded") else "not-loaded"
    return {**out, "id": m.key, "state": state, "peer": _peer(c, m)}


def model_openai(c: ApiContext, m: PeerModel) -> dict[str, Any]:
    """A peer's model in ``GET /v1/models``."""
    return {"id": m.key, "object": "model", "owned_by": m.peer, "peer": _peer(c, m)}
