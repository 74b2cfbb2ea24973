"""The "Load" tab's keys of a model's preset, the first fields ``ModelPreset`` inherits."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.core.presets.field_meta import LOAD
from app.core.presets.field_meta import opt as _opt
from app.core.presets.values import CacheType, Layers, OnOffAuto, Switch, Workers


class LoadFields(BaseModel):
    """The "Load" fields of ``ModelPreset``, in the tab's order."""

    # ── Load ──────────────────────────────────────────────────────────────────
    ctx_size: int | None = Field(
        default=None,
        alias="ctx-size",
        ge=0,
        title="Context size",
        description="Tokens of context (--ctx-size); 0 = the model's own",
        json_schema_extra=_opt(
            LOAD,
            names=("c", "LLAMA_ARG_CTX_SIZE"),
            spec="ctx_size",
            load_config="context_length",
            default_text="Settings: LLAMA_CTX_SIZE",
        ),
    )
    n_gpu_layers: Layers = Field(
        default=None,
        alias="n-gpu-layers",
        ge=-1,
        title="GPU layers",
        description="Layers put on the GPU (--n-gpu-layers); -1 or 'all' = all, 0 = none",
        json_schema_extra=_opt(
            LOAD,
            names=("ngl", "gpu-layers", "LLAMA_ARG_N_GPU_LAYERS"),
            spec="n_gpu_layers",
            load_config="gpu_layers",
            default_text="Settings: LLAMA_GPU_LAYERS",
        ),
    )
    flash_attn: OnOffAuto = Field(
        default=None,
        alias="flash-attn",
        title="Flash attention",
        description="Flash attention (--flash-attn): on, off, or auto (on where the GPU has it)",
        json_schema_extra=_opt(
            LOAD,
            flags=("--flash-attn",),
            names=("fa", "LLAMA_ARG_FLASH_ATTN"),
            load_config="flash_attention",
            default_text="auto",
        ),
    )
    cache_type_k: CacheType = Field(
        default=None,
        alias="cache-type-k",
        title="KV cache type (K)",
        description="Data type of the K cache (--cache-type-k); q8_0 halves its memory",
        json_schema_extra=_opt(
            LOAD,
            flags=("--cache-type-k",),
            names=("ctk", "LLAMA_ARG_CACHE_TYPE_K"),
            default_text="f16",
        ),
    )
    cache_type_v: CacheType = Field(
        default=None,
        alias="cache-type-v",
        title="KV cache type (V)",
        description="Data type of the V cache (--cache-type-v); a quantized V cache needs "
        "flash attention",
        json_schema_extra=_opt(
            LOAD,
            flags=("--cache-type-v",),
            names=("ctv", "LLAMA_ARG_CACHE_TYPE_V"),
            default_text="f16",
        ),
    )
    parallel: int | None = Field(
        default=None,
        alias="parallel",
        ge=1,
        title="Requests at once",
        description="Server slots (--parallel): requests answered at once, each with its "
        "share of the context",
        json_schema_extra=_opt(
            LOAD,
            flags=("--parallel",),
            names=("np", "LLAMA_ARG_N_PARALLEL"),
            load_config="parallel",
            default_text="auto",
        ),
    )
    batch_size: int | None = Field(
        default=None,
        alias="batch-size",
        ge=1,
        title="Batch size",
        description="Logical batch size (--batch-size): prompt tokens taken in one step",
        json_schema_extra=_opt(
            LOAD,
            flags=("--batch-size",),
            names=("b", "LLAMA_ARG_BATCH"),
            load_config="eval_batch_size",
            default_text="2048",
        ),
    )
    ubatch_size: int | None = Field(
        default=None,
        alias="ubatch-size",
        ge=1,
        title="Micro-batch size",
        description="Physical batch size (--ubatch-size)",
        json_schema_extra=_opt(
            LOAD,
            flags=("--ubatch-size",),
            names=("ub", "LLAMA_ARG_UBATCH"),
            default_text="512",
        ),
    )
    threads: int | None = Field(
        default=None,
        alias="threads",
        ge=-1,
        title="CPU threads",
        description="CPU threads for generation (--threads); -1 = llama-server chooses",
        json_schema_extra=_opt(
            LOAD,
            flags=("--threads",),
            names=("t", "LLAMA_ARG_THREADS"),
            default_text="automatic",
        ),
    )
    kv_offload: Switch = Field(
        default=None,
        alias="kv-offload",
        title="KV cache on the GPU",
        description="Keep the KV cache in GPU memory (--kv-offload / --no-kv-offload)",
        json_schema_extra=_opt(
            LOAD,
            flags=("--kv-offload",),
            off_flags=("--no-kv-offload",),
            names=("kvo", "LLAMA_ARG_KV_OFFLOAD"),
            negative=("no-kv-offload", "nkvo"),
            load_config="offload_kv_cache_to_gpu",
            default_text="on",
        ),
    )
    mmap: Switch = Field(
        default=None,
        alias="mmap",
        title="Map the file into memory",
        description="Memory-map the model file (--mmap / --no-mmap); off loads slower but "
        "can keep it from being paged out",
        json_schema_extra=_opt(
            LOAD,
            flags=("--mmap",),
            off_flags=("--no-mmap",),
            names=("LLAMA_ARG_MMAP",),
            negative=("no-mmap",),
            default_text="on",
        ),
    )
    mlock: Switch = Field(
        default=None,
        alias="mlock",
        title="Lock in RAM",
        description="Keep the model in RAM, never swapped out (--mlock)",
        json_schema_extra=_opt(
            LOAD,
            flags=("--mlock",),
            names=("LLAMA_ARG_MLOCK",),
            default_text="off",
        ),
    )

    rpc: Workers = Field(
        default=None,
        alias="rpc",
        title="RPC workers",
        description="Run across other machines' GPUs (--rpc): llama.cpp RPC workers, "
        "host:port comma-separated. The RPC protocol has no authentication: use workers on "
        "a network you trust",
        json_schema_extra=_opt(
            LOAD,
            flags=("--rpc",),
            names=("LLAMA_ARG_RPC",),
            load_config="rpc",
            default_text="none (Settings: RPC_WORKERS in auto mode)",
        ),
    )
