"""A catalogue model as LM Studio's SDKs describe it (``ModelInfo``), and a loaded instance
(``ModelInstanceInfo``: the same plus its identifier, reference, TTL and context)."""

from __future__ import annotations

import re
from typing import Any

from app.core.api.lmstudio_ws.state import Session
from app.core.lifecycle.instance import Instance
from app.core.models.entry import ModelEntry

_BITS = re.compile(r"^(?:I?Q|BF|F|MXFP)(\d+)", re.IGNORECASE)


def quant_bits(name: str | None) -> int | None:
    """Bits per weight as LM Studio names them: Q4_K_M → 4, F16 → 16, IQ3_XS → 3."""
    m = _BITS.match(name or "")
    return int(m.group(1)) if m else None


def domain_of(entry: ModelEntry) -> str:
    """The SDK namespace a model belongs to (a reranker is listed as embedding, as REST)."""
    return "llm" if entry.type == "llm" else "embedding"


def model_info(entry: ModelEntry) -> dict[str, Any]:
    info = entry.info
    out: dict[str, Any] = {
        "type": domain_of(entry),
        "modelKey": entry.key,
        "format": "gguf",
        "displayName": entry.display_name,
        "publisher": entry.publisher,
        "path": entry.path,
        "sizeBytes": entry.size_bytes,
        "indexedModelIdentifier": entry.path,
        "deviceIdentifier": None,
        "maxContextLength": entry.max_context_length or 0,
    }
    if info is not None and info.params_string:
        out["paramsString"] = info.params_string
    if info is not None and info.architecture:
        out["architecture"] = info.architecture
    bits = quant_bits(entry.quant)
    if entry.quant and bits is not None:
        out["quantization"] = {"name": entry.quant, "bits": bits}
    if domain_of(entry) == "llm":
        out["vision"] = entry.vision
        out["trainedForToolUse"] = bool(info and info.tool_use)
    return out


def instance_ref(inst: Instance) -> str:
    """An instance's reference: fixed for the life of its process."""
    return f"{inst.key}#{inst.pid}"


def instance_info(s: Session, inst: Instance) -> dict[str, Any]:
    assert inst.entry is not None
    ttl = inst.ttl
    if ttl is None:
        minutes = s.c.settings().IDLE_UNLOAD_MINUTES
        ttl = minutes * 60 if minutes > 0 else None
    return {
        **model_info(inst.entry),
        "identifier": s.state.name_of(inst.key),
        "instanceReference": instance_ref(inst),
        "ttlMs": int(ttl * 1000) if ttl is not None else None,
        "lastUsedTime": int(inst.last_used * 1000) if inst.last_used else None,
        "contextLength": inst.context_length or 0,
    }
