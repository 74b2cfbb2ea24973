"""LM Studio's KV configs: a stack of layers of ``{key, value}`` fields (later layers win),
read into the app's load config, and a running instance's config written back."""

from __future__ import annotations

import logging
from typing import Any

from app.core.api.common import ApiError
from app.core.api.lmstudio_ws.errors import SdkError
from app.core.api.load_config import config_json, parse_load_config
from app.core.lifecycle.instance import Instance
from app.core.models.launch_args import LoadConfig

log = logging.getLogger(__name__)

# LM Studio's load keys (after the "llm.load." / "embedding.load." prefix) → the REST load's
_LOAD_KEYS = {
    "contextLength": "context_length",
    "llama.flashAttention": "flash_attention",
    "llama.evalBatchSize": "eval_batch_size",
    "offloadKVCacheToGpu": "offload_kv_cache_to_gpu",
    "numParallelSessions": "parallel",
}
_QUIET = {"load.gpuSplitConfig"}  # the Python SDK sends it with any GPU setting


def collapse(stack: Any, what: str = "loadConfigStack") -> dict[str, Any]:
    """Every key of a config stack with the value of the last layer that sets it."""
    out: dict[str, Any] = {}
    if stack is None:
        return out
    layers = stack.get("layers") if isinstance(stack, dict) else None
    if not isinstance(layers, list):
        raise SdkError(f'"{what}" must be {{"layers": [...]}}, not {stack!r:.200}')
    for layer in layers:
        config = layer.get("config") if isinstance(layer, dict) else None
        fields = config.get("fields") if isinstance(config, dict) else None
        if not isinstance(fields, list):
            raise SdkError(f'Each layer of "{what}" needs {{"config": {{"fields": [...]}}}}')
        for f in fields:
            if isinstance(f, dict) and isinstance(f.get("key"), str):
                out[f["key"]] = f.get("value")
    return out


def layer_names(stack: Any) -> set[str]:
    layers = stack.get("layers") if isinstance(stack, dict) else None
    return {
        layer.get("layerName")
        for layer in layers or []
        if isinstance(layer, dict) and isinstance(layer.get("layerName"), str)
    }


def checked(value: Any) -> Any:
    """A "checkbox numeric" setting (``{"checked": bool, "value": n}``): its value when
    checked, else None; a plain value as it is."""
    if isinstance(value, dict) and "checked" in value:
        return value.get("value") if value.get("checked") else None
    return value


def load_config(stack: Any, domain: str, model: str) -> LoadConfig:
    """The load config a stack asks for, checked as the REST load checks it."""
    values = collapse(stack)
    prefix = f"{domain}.load."
    body: dict[str, Any] = {}
    ignored = []
    for key, value in values.items():
        ours = _LOAD_KEYS.get(key.removeprefix(prefix)) if key.startswith(prefix) else None
        if ours is not None:
            body[ours] = value
        elif key not in _QUIET:
            ignored.append(key)
    if ignored:
        log.info("Loading %s for an SDK client: not applied here: %s", model, ", ".join(ignored))
    try:
        return parse_load_config(body)
    except ApiError as e:
        raise SdkError(f"Bad load config for {model}: {e.message}") from None


def fields(values: dict[str, Any]) -> dict[str, Any]:
    """A KV config from a dict."""
    return {"fields": [{"key": k, "value": v} for k, v in values.items()]}


def running_fields(inst: Instance, domain: str) -> dict[str, Any]:
    """The load config an instance runs with, as LM Studio's KV config."""
    shown = config_json(inst.config, domain == "llm")
    back = {ours: key for key, ours in _LOAD_KEYS.items()}
    return fields({f"{domain}.load.{back[k]}": v for k, v in shown.items() if k in back})
