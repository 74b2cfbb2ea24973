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

    context_length: int | None = None  # -c
    flash_attention: bool | None = None  # -fa on|off (None: llama-server's auto)
    eval_batch_size: int | None = None  # -b
    offload_kv_cache_to_gpu: bool | None = None  # False: --no-kv-offload
    parallel: int | None = None  # -np
    gpu_layers: int | None = None  # -ngl (-1: all); None: LLAMA_GPU_LAYERS

    def args(self) -> list[str]:
        """llama-server's arguments for the fields set (the context length is ``ctx_size``)."""
        out: list[str] = []
        if self.flash_attention is not None:
            out += ["-fa", "on" if self.flash_attention else "off"]
        if self.eval_batch_size is not None:
            out += ["-b", str(self.eval_batch_size)]
        if self.offload_kv_cache_to_gpu is False:
            out += ["--no-kv-offload"]
        if self.parallel is not None:
            out += ["-np", str(self.parallel)]
        return out

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
)


def running_config(
    ctx_size: int, extra_args: tuple[str, ...] | list[str], gpu_layers: int | None = None
) -> LoadConfig:
    """The load config a server runs with, read from its arguments (the last one wins, as
    in llama-server)."""
    fa = batch = par = None
    kv = None
    args = list(extra_args)
    for i, a in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if a in ("-fa", "--flash-attn") and nxt in ("on", "off"):
            fa = nxt == "on"
        elif a in ("-b", "--batch-size") and nxt.isdigit():
            batch = int(nxt)
        elif a in ("-np", "--parallel") and nxt.lstrip("-").isdigit():
            par = int(nxt)
        elif a in ("-nkvo", "--no-kv-offload"):
            kv = False
        elif a in ("-kvo", "--kv-offload"):
            kv = True
    return LoadConfig(
        context_length=ctx_size,
        flash_attention=fa,
        eval_batch_size=batch,
        offload_kv_cache_to_gpu=kv,
        parallel=par,
        gpu_layers=gpu_layers,
    )


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
    ngl = config.gpu_layers if config and config.gpu_layers is not None else None
    return {
        "n_gpu_layers": s.LLAMA_GPU_LAYERS if ngl is None else ngl,
        "ctx_size": s.LLAMA_CTX_SIZE if ctx is None else ctx,
        "mmproj": entry.mmproj,
        # the client's load config last: llama-server takes the last of a repeated flag
        "extra_args": extra_args_for(entry, s) + (config.args() if config else []),
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
