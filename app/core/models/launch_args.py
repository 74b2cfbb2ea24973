"""How a catalogue model is started: the manager's arguments from the entry, the settings
and the load config. The lifecycle loads with them and compares running servers to them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.core.models.entry import ModelEntry


@dataclass(frozen=True)
class LoadConfig:
    """What a client may choose when it loads a model (LM Studio's load config)."""

    context_length: int | None = None


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
    entry: ModelEntry, s: Settings, config: LoadConfig | None = None
) -> dict[str, Any]:
    ctx = config.context_length if config and config.context_length is not None else None
    return {
        "n_gpu_layers": s.LLAMA_GPU_LAYERS,
        "ctx_size": s.LLAMA_CTX_SIZE if ctx is None else ctx,
        "mmproj": entry.mmproj,
        "extra_args": extra_args_for(entry, s),
        "timeout": s.LLAMA_READY_TIMEOUT,
    }


def launch_key(kwargs: dict[str, Any]) -> tuple:
    """The part of the arguments a running server is compared on."""
    return (
        kwargs["n_gpu_layers"],
        kwargs["ctx_size"],
        kwargs["mmproj"] or None,
        tuple(kwargs["extra_args"]),
    )
