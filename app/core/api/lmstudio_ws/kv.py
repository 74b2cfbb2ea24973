"""LM Studio's KV configs: a stack of layers of ``{key, value}`` fields (later layers win),
read into the app's load config, and a running instance's config written back."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from app.core.api.common import ApiError
from app.core.api.lmstudio_ws.errors import SdkError
from app.core.api.load_config import config_json, parse_load_config
from app.core.lifecycle.instance import Instance
from app.core.models.entry import ModelEntry
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
_OFFLOAD = "llama.acceleration.offloadRatio"  # 0..1, "max" or "off": → llama-server's -ngl
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


def gpu_layers(ratio: Any, blocks: int | None, model: str) -> int:
    """LM Studio's GPU offload ratio as llama-server's layer count (-1: all)."""
    if ratio == "max" or ratio == 1:
        return -1
    if ratio == "off" or ratio == 0:
        return 0
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1:
        raise SdkError(
            f'Bad load config for {model}: the GPU offload ratio must be "max", "off" or a '
            f"number from 0 to 1, not {ratio!r:.50}"
        )
    return round(ratio * blocks) if blocks else -1


def load_config(stack: Any, domain: str, entry: ModelEntry) -> LoadConfig:
    """The load config a stack asks for, checked as the REST load checks it."""
    values = collapse(stack)
    prefix = f"{domain}.load."
    body: dict[str, Any] = {}
    ignored = []
    ratio = None
    for key, value in values.items():
        short = key.removeprefix(prefix) if key.startswith(prefix) else None
        if short == _OFFLOAD:
            ratio = value
        elif short in _LOAD_KEYS:
            body[_LOAD_KEYS[short]] = value
        elif key not in _QUIET:
            ignored.append(key)
    if ignored:
        log.info(
            "Loading %s for an SDK client: not applied here: %s", entry.key, ", ".join(ignored)
        )
    try:
        config = parse_load_config(body)
    except ApiError as e:
        raise SdkError(f"Bad load config for {entry.key}: {e.message}") from None
    if ratio is None:
        return config
    blocks = entry.info.block_count if entry.info else None
    return replace(config, gpu_layers=gpu_layers(ratio, blocks, entry.key))


def fields(values: dict[str, Any]) -> dict[str, Any]:
    """A KV config from a dict."""
    return {"fields": [{"key": k, "value": v} for k, v in values.items()]}


def running_fields(inst: Instance, domain: str) -> dict[str, Any]:
    """The load config an instance runs with, as LM Studio's KV config."""
    config = inst.config
    shown = config_json(config, domain == "llm")
    back = {ours: key for key, ours in _LOAD_KEYS.items()}
    values = {f"{domain}.load.{back[k]}": v for k, v in shown.items() if k in back}
    blocks = inst.entry.info.block_count if inst.entry and inst.entry.info else None
    ngl = config.gpu_layers
    if ngl is not None:
        ratio: Any = "off" if ngl == 0 else "max"
        if blocks and 0 < ngl < blocks:
            ratio = round(ngl / blocks, 3)
        values[f"{domain}.load.{_OFFLOAD}"] = ratio
    return fields(values)
