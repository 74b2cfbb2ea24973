"""LM Studio's load config in a request: ``POST /api/v1/models/load``'s top-level fields (and
the older ``config`` object), and ``ttl``; as the ``LoadConfig`` the lifecycle loads with.
Beside LM Studio's fields, ``rpc`` names the llama.cpp RPC workers a model runs across
(llama-server's ``--rpc``; a model's preset names them with its ``rpc`` key)."""

from __future__ import annotations

from typing import Any

from app.core.api.common import ApiError, shown
from app.core.models.launch_args import LoadConfig
from app.settings_types import worker_addresses

_INTS = ("context_length", "eval_batch_size", "parallel")
_BOOLS = ("flash_attention", "offload_kv_cache_to_gpu")
_MIN = {"context_length": 0, "eval_batch_size": 1, "parallel": 1}


def parse_load_config(body: dict[str, Any]) -> LoadConfig:
    """The fields of a load request; the top level wins over ``config``."""
    config = body.get("config")
    if config is not None and not isinstance(config, dict):
        raise ApiError(400, '"config" must be a JSON object, e.g. {"context_length": 8192}')
    merged = {
        **(config or {}),
        **{k: v for k, v in body.items() if k in (*_INTS, *_BOOLS, "rpc")},
    }
    values: dict[str, Any] = {}
    for name in _INTS:
        v = merged.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < _MIN[name]:
            raise ApiError(
                400, f'"{name}" must be a whole number >= {_MIN[name]}, not {shown(v)}', param=name
            )
        values[name] = v
    for name in _BOOLS:
        v = merged.get(name)
        if v is None:
            continue
        if not isinstance(v, bool):
            raise ApiError(400, f'"{name}" must be true or false, not {shown(v)}', param=name)
        values[name] = v
    rpc = _rpc(merged.get("rpc"))
    if rpc:
        values["rpc"] = rpc
    return LoadConfig(**values)


def _rpc(value: Any) -> tuple[str, ...] | None:
    """``rpc``: the llama.cpp RPC workers to run across ("host:port,host:port" or a list)."""
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise ApiError(
            400,
            f'"rpc" must be "host:port,host:port" or a list of them, not {value!r}',
            param="rpc",
        )
    try:
        return tuple(worker_addresses(value)) or None
    except ValueError as e:
        raise ApiError(400, f'"rpc": {e}', param="rpc") from None


def parse_ttl(body: dict[str, Any]) -> float | None:
    """``ttl``: seconds idle before the instance is unloaded (LM Studio's JIT/load TTL)."""
    v = body.get("ttl")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise ApiError(400, f'"ttl" must be a number of seconds > 0, not {shown(v)}', param="ttl")
    return float(v)


def config_json(config: LoadConfig, llm: bool = True) -> dict[str, Any]:
    """A config as LM Studio shows it; an embedding model has only its context length."""
    out: dict[str, Any] = {"context_length": config.context_length}
    if not llm:
        return out
    out["eval_batch_size"] = config.eval_batch_size or 2048  # llama-server's default
    if config.flash_attention is not None:
        out["flash_attention"] = config.flash_attention
    out["offload_kv_cache_to_gpu"] = config.offload_kv_cache_to_gpu is not False
    if config.parallel is not None:
        out["parallel"] = config.parallel
    if config.rpc:
        out["rpc"] = list(config.rpc)
    return out
