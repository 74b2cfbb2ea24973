"""How a catalogue model is started: the manager's arguments from the entry, the settings,
the model's preset (``models.ini``) and the load config. The lifecycle loads with them and
compares running servers to them. The options come from the one mapping of
``app/core/presets/flags.py``, both ways."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.core.models.entry import ModelEntry
from app.core.presets.fields import ModelPreset
from app.core.presets.flags import (
    Known,
    from_load_config,
    load_config_values,
    preset_args,
    read_args,
)


@dataclass(frozen=True)
class LoadConfig:
    """What a client may choose when it loads a model (LM Studio's load config)."""

    # each is a field of the preset model too (its ``load_config`` metadata), which maps
    # it to llama-server's option
    context_length: int | None = None  # ctx-size
    flash_attention: bool | None = None  # flash-attn on|off (None: llama-server's auto)
    eval_batch_size: int | None = None  # batch-size
    offload_kv_cache_to_gpu: bool | None = None  # kv-offload
    parallel: int | None = None  # parallel
    gpu_layers: int | None = None  # n-gpu-layers (-1: all); None: LLAMA_GPU_LAYERS
    rpc: tuple[str, ...] | None = None  # rpc: the RPC workers (host:port) to run across

    def differs(self, running: LoadConfig) -> list[str]:
        """The fields set here that ``running`` has another value for."""
        out = []
        for name in FIELDS:
            want = getattr(self, name)
            if want is None:
                continue
            have = getattr(running, name)
            if name == "offload_kv_cache_to_gpu":
                have = have is not False  # llama-server offloads unless told not to
            if name == "rpc":
                want, have = set(want), set(have or ())
            if want != have:
                out.append(name)
        return out


FIELDS = (
    "context_length",
    "flash_attention",
    "eval_batch_size",
    "offload_kv_cache_to_gpu",
    "parallel",
    "gpu_layers",
    "rpc",
)
RPC_FLAG = "--rpc"  # llama-server's option: comma-separated host:port of RPC workers


def rpc_of(args: tuple[str, ...] | list[str]) -> tuple[str, ...] | None:
    """The RPC workers an argument list names (the last ``--rpc`` wins, as in llama-server),
    None when it names none. Whatever asks for workers (``LLAMA_EXTRA_ARGS``, a load
    config's ``rpc``, a model's preset) does so with this option, and placement reads it
    here."""
    found: tuple[str, ...] | None = None
    for i, a in enumerate(args):
        value = None
        if a == RPC_FLAG and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(RPC_FLAG + "="):
            value = a.split("=", 1)[1]
        if value is not None:
            found = tuple(p.strip() for p in value.split(",") if p.strip())
    return found


def with_rpc(args: list[str] | tuple[str, ...], workers: tuple[str, ...]) -> list[str]:
    """``args`` without any ``--rpc``, then ``--rpc`` with ``workers`` (placement's choice)
    when there are any."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == RPC_FLAG:
            skip = True
        elif not a.startswith(RPC_FLAG + "="):
            out.append(a)
    return out + ([RPC_FLAG, ",".join(workers)] if workers else [])


def running_config(
    ctx_size: int, extra_args: tuple[str, ...] | list[str], gpu_layers: int | None = None
) -> LoadConfig:
    """The load config a server runs with, read from its arguments (the last one wins, as
    in llama-server)."""
    values = load_config_values(read_args(extra_args))
    return LoadConfig(**{**values, "context_length": ctx_size, "gpu_layers": gpu_layers})


def extra_args_for(entry: ModelEntry, s: Settings) -> list[str]:
    """``-lv 4``, ``LLAMA_EXTRA_ARGS``, the type's flags (``--embeddings``), then ``--alias
    <key>``, so llama-server names the model by its key instead of its path.

    The alias is left out when the user names the model already (``--alias``/``-a`` in
    ``LLAMA_EXTRA_ARGS``, or ``LLAMA_ARG_ALIAS`` in the environment), and for a key with a
    comma (llama-server splits aliases on commas).
    """
    # -lv 4 makes llama-server log its buffer sizes (model / KV / compute), which the
    # models window shows; the user's own arguments come after and win.
    args = ["-lv", "4", *s.extra_args]
    args += [f for f in entry.type_flags if f not in args]
    key = entry.key
    named = any(a in ("--alias", "-a") or a.startswith("--alias=") for a in args)
    if key and "," not in key and not named and "LLAMA_ARG_ALIAS" not in os.environ:
        args = [*args, "--alias", key]
    return args


def launch_kwargs(
    entry: ModelEntry,
    s: Settings,
    config: LoadConfig | None = None,
    *,
    preset: ModelPreset | None = None,
    known: Known = None,
) -> dict[str, Any]:
    """The manager's arguments: the app's settings, the model's ``preset`` over them (its
    ``[*]`` and own section, ``model_draft`` a file), then the client's ``config`` over that;
    ``known``: the options the binary takes (None: the newest spellings)."""
    p = from_load_config(config).over(preset or ModelPreset())
    return {
        "n_gpu_layers": s.LLAMA_GPU_LAYERS if p.n_gpu_layers is None else p.n_gpu_layers,
        "ctx_size": s.LLAMA_CTX_SIZE if p.ctx_size is None else p.ctx_size,
        "mmproj": entry.mmproj,
        # the model's own options last: llama-server takes the last of a repeated option
        "extra_args": extra_args_for(entry, s) + preset_args(p, known),
        "timeout": s.LLAMA_READY_TIMEOUT,
    }


def launch_key(kwargs: dict[str, Any]) -> tuple:
    """The part of the arguments a running server is compared on (not its RPC workers:
    placement chooses those at each load)."""
    return (
        kwargs["n_gpu_layers"],
        kwargs["ctx_size"],
        kwargs["mmproj"] or None,
        tuple(with_rpc(kwargs["extra_args"], ())),
    )
