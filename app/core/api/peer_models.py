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


def model_v1(c: ApiContext, m: PeerModel) -> dict[str, Any]:
    """A peer's model in ``GET /api/v1/models``: the peer's own entry, named by its key."""
    kind = "embedding" if m.type == "embeddings" else "llm"
    out = {
        "type": kind,
        "publisher": m.peer,
        "display_name": m.id,
        "architecture": None,
        "quantization": None,
        "size_bytes": None,
        "params_string": None,
        "max_context_length": None,
        "format": "gguf",
        "capabilities": {"vision": m.type == "vlm", "trained_for_tool_use": False},
        "description": None,
        **{k: v for k, v in m.info.items() if k not in ("key", "peer", "loaded_instances")},
    }
    loaded = [
        {**i, "id": f"{m.peer}/{i.get('id', m.id)}"}
        for i in m.info.get("loaded_instances") or []
        if isinstance(i, dict)
    ]
    if not loaded and m.state == "loaded":
        loaded = [{"id": m.key, "config": {}}]
    return {**out, "key": m.key, "loaded_instances": loaded, "peer": _peer(c, m)}


def model_v0(c: ApiContext, m: PeerModel) -> dict[str, Any]:
    """A peer's model in ``GET /api/v0/models``."""
    out = {
        "object": "model",
        "type": m.type,
        "publisher": m.peer,
        "arch": None,
        "compatibility_type": "gguf",
        "quantization": None,
        "max_context_length": None,
        **{k: v for k, v in m.info.items() if k not in ("id", "state", "peer")},
    }
    state = m.state if m.state in ("loaded", "not-loaded") else "not-loaded"
    return {**out, "id": m.key, "state": state, "peer": _peer(c, m)}


def model_openai(c: ApiContext, m: PeerModel) -> dict[str, Any]:
    """A peer's model in ``GET /v1/models``."""
    return {"id": m.key, "object": "model", "owned_by": m.peer, "peer": _peer(c, m)}
