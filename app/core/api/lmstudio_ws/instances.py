"""The calls the ``llm`` and ``embedding`` namespaces share: what is loaded, one instance's
info and load config, unload, tokenize and count tokens."""

from __future__ import annotations

import json
from typing import Any

from app.core.api.lmstudio_ws.errors import SdkError
from app.core.api.lmstudio_ws.info import instance_info
from app.core.api.lmstudio_ws.kv import fields, running_fields
from app.core.api.lmstudio_ws.models import (
    entry_named,
    loaded,
    loaded_instance,
    missing,
    resolve,
    using,
)
from app.core.api.lmstudio_ws.state import Session
from app.core.api.upstream import post_upstream
from app.core.lifecycle.instance import Instance


def param_of(param: Any) -> dict[str, Any]:
    if not isinstance(param, dict):
        raise SdkError(f"Expected an object as the call's parameter, not {param!r:.100}")
    return param


def text_of(p: dict[str, Any], field: str = "inputString") -> str:
    value = p.get(field)
    if not isinstance(value, str):
        raise SdkError(f'"{field}" must be a string, not {value!r:.100}')
    return value


async def ask(s: Session, inst: Instance, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to the instance's llama-server; its JSON answer, or an SdkError with
    llama-server's own message."""
    up = await post_upstream(s.c, inst.port, path, json=body)
    async with up:
        status, raw = up.status, await up.read()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if status != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise SdkError(
            f"llama-server could not answer {path} for {inst.key} (HTTP {status})",
            cause=str(message or raw[:300].decode("utf-8", "replace")),
            suggestion=f"Read {s.c.log_path(inst.port)}",
        )
    return data


def _ready(s: Session, spec: Any) -> Instance:
    entry = resolve(s, spec)
    inst = loaded_instance(s, entry)
    if inst is None:
        raise missing(s, entry.key)
    return inst


async def list_loaded(s: Session, _param: Any) -> list[dict[str, Any]]:
    return [instance_info(s, i) for i in loaded(s)]


async def get_model_info(s: Session, param: Any) -> dict[str, Any] | None:
    p = param_of(param)
    try:
        return instance_info(s, _ready(s, p.get("specifier")))
    except SdkError:
        if p.get("throwIfNotFound") is False:
            return None
        raise


async def get_load_config(s: Session, param: Any) -> dict[str, Any]:
    inst = _ready(s, param_of(param).get("specifier"))
    return running_fields(inst, s.namespace)


async def get_base_prediction_config(s: Session, param: Any) -> dict[str, Any]:
    """No server-side defaults here: llama-server's own apply."""
    _ready(s, param_of(param).get("specifier"))
    return fields({})


async def unload_model(s: Session, param: Any) -> None:
    name = param_of(param).get("identifier")
    entry = entry_named(s, name)
    if loaded_instance(s, entry) is None and s.c.lifecycle.instance(entry) is None:
        raise missing(s, str(name))
    await s.c.lifecycle.unload(entry)
    s.state.names.pop(entry.key, None)


async def _tokens(s: Session, param: Any) -> list[int]:
    p = param_of(param)
    text = text_of(p)
    entry = resolve(s, p.get("specifier"))
    async with using(s, entry) as inst:
        data = await ask(s, inst, "/tokenize", {"content": text})
    tokens = data.get("tokens")
    if not isinstance(tokens, list):
        raise SdkError(f"llama-server sent no tokens for {entry.key}")
    return tokens


async def tokenize(s: Session, param: Any) -> dict[str, Any]:
    return {"tokens": await _tokens(s, param)}


async def count_tokens(s: Session, param: Any) -> dict[str, Any]:
    return {"tokenCount": len(await _tokens(s, param))}


SHARED_RPC = {
    "listLoaded": list_loaded,
    "getModelInfo": get_model_info,
    "getLoadConfig": get_load_config,
    "getBasePredictionConfig": get_base_prediction_config,
    "unloadModel": unload_model,
    "tokenize": tokenize,
    "countTokens": count_tokens,
}
