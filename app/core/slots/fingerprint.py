"""What a saved slot is tied to: the model file (path, size, modification time), the
projector's, the context size, every llama-server option that may change what the KV cache
holds or how it is laid out (cache types, flash attention, parallel slots, unified KV, RoPE,
LoRA, ...: every argument but those known to leave it alone), the ``LLAMA_ARG_*`` variables
the server inherits, and the binary itself. A slot is restored only into a server whose
fingerprint is the same; it is taken when the server starts, so a file replaced while the
model runs ties the saved context to the file it was computed from."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from app.core.servers.states import LaunchSpec

# Arguments that never change the KV cache (flag -> takes a value). Everything else counts.
HARMLESS: dict[str, bool] = {
    "-lv": True,
    "--verbosity": True,
    "--log-verbosity": True,
    "--log-file": True,
    "--log-colors": True,
    "--log-prefix": False,
    "--log-timestamps": False,
    "-a": True,
    "--alias": True,
    "-t": True,
    "--threads": True,
    "-tb": True,
    "--threads-batch": True,
    "-b": True,
    "--batch-size": True,
    "-ub": True,
    "--ubatch-size": True,
    "--slot-save-path": True,
    "--metrics": False,
    "--slots": False,
    "--no-slots": False,
    "--no-webui": False,
    "-to": True,
    "--timeout": True,
    "--host": True,
    "--port": True,
    "--mlock": False,
    "--mmap": False,
    "--no-mmap": False,
    "-cram": True,
    "--cache-ram": True,
    "--cache-reuse": True,
    "--cache-prompt": False,
    "--no-cache-prompt": False,
    "-ngl": True,
    "--gpu-layers": True,
    "--n-gpu-layers": True,
    "--prio": True,
    "--poll": True,
}
HARMLESS_ENV = {"LLAMA_ARG_THREADS", "LLAMA_ARG_THREADS_BATCH", "LLAMA_ARG_N_GPU_LAYERS",
                "LLAMA_ARG_BATCH", "LLAMA_ARG_UBATCH", "LLAMA_ARG_ALIAS", "LLAMA_ARG_PORT",
                "LLAMA_ARG_HOST", "LLAMA_ARG_CACHE_RAM", "LLAMA_ARG_ENDPOINT_SLOTS",
                "LLAMA_ARG_ENDPOINT_METRICS", "LLAMA_ARG_TIMEOUT"}  # fmt: skip


def cache_args(args: tuple[str, ...] | list[str]) -> list[str]:
    """``args`` without those in ``HARMLESS`` (and their values)."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        flag, eq, _ = a.partition("=")
        if flag in HARMLESS:
            skip = HARMLESS[flag] and not eq
            continue
        out.append(a)
    return out


def _file_id(path: str | None) -> list | None:
    if not path:
        return None
    st = os.stat(path)
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def describe(spec: LaunchSpec, binary: str, env: Mapping[str, str] | None = None) -> dict:
    """The parts of the fingerprint, readable (kept in the index beside each file).
    ``OSError`` when the model or the binary cannot be looked at."""
    env = os.environ if env is None else env
    return {
        "model": _file_id(spec.model_path),
        "mmproj": _file_id(spec.mmproj),
        "ctx_size": spec.ctx_size,
        "args": cache_args(spec.extra_args),
        "env": sorted(
            f"{k}={v}"
            for k, v in env.items()
            if k.startswith("LLAMA_ARG_") and k not in HARMLESS_ENV
        ),
        "binary": _file_id(binary),
    }


def fingerprint(parts: dict) -> str:
    """A short hash of ``describe``'s parts."""
    raw = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:24]
