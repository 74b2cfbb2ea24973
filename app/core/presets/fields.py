"""The per-model settings as one pydantic model, the single source of the preset file's keys.

Each field is one key of a ``models.ini`` section (its alias: llama-server's long option
without the dashes, as llama.cpp's ``--models-preset`` names it) and says, in
``json_schema_extra``, everything the rest of the app derives from it:

- ``group``: the tab of the per-model form (``app/core/settings/form.py`` builds it);
- ``names``: the other spellings llama.cpp accepts for the key (short option, older long
  option, environment variable), and ``negative``: keys that mean the opposite
  (``no-mmap = true`` is ``mmap = false``);
- ``flags``: the llama-server option(s) it becomes, in order of preference (the first one the
  binary knows is used: llama.cpp renamed ``--draft-max`` to ``--spec-draft-n-max``); a bool
  has ``off_flags`` for false; ``spec`` names a LaunchSpec argument instead (``ctx_size``,
  ``n_gpu_layers``: the manager's own); no flags at all: the app's own key;
- ``load_config``: the field of LM Studio's load config it corresponds to, so a request's
  load config is laid over a preset field by field;
- ``applies``: when a change takes effect (the next load of the model, or at once);
- ``default_text``: what applies when the key is not set; ``suggest``: what the form offers
  to choose from (``models``: the catalogue).

Every field is optional: a key not set falls back to the ``[*]`` section, then to the app's
settings (``LLAMA_CTX_SIZE``, ``LLAMA_GPU_LAYERS``) or llama-server's own default. The forms a
value takes are ``values.py``'s; the keys' spellings and lookups are ``keys.py``'s.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.config import Applies
from app.core.presets.values import (
    CacheType,
    Layers,
    Names,
    OneLine,
    OnOffAuto,
    Switch,
    Workers,
)

LOAD = "Load"
DRAFT = "Speculative decoding"
SAMPLING = "Sampling"
APP = "This app"
PRESET_GROUPS = (LOAD, DRAFT, SAMPLING, APP)

# when a change takes effect, as the app's settings say it (``Applies``)
NEXT_LOAD, NOW, APP_START = Applies.NEXT_LOAD, Applies.NOW, Applies.RESTART


def _opt(
    group: str,
    *,
    flags: tuple[str, ...] = (),
    off_flags: tuple[str, ...] = (),
    names: tuple[str, ...] = (),
    negative: tuple[str, ...] = (),
    spec: str | None = None,
    load_config: str | None = None,
    applies: Applies = NEXT_LOAD,
    default_text: str = "llama-server's default",
    suggest: str | None = None,
) -> dict[str, Any]:
    if group not in PRESET_GROUPS:
        raise ValueError(f"{group!r} is not one of {PRESET_GROUPS}")
    return {
        "group": group,
        "flags": list(flags),
        "off_flags": list(off_flags),
        "names": list(names),
        "negative": list(negative),
        "spec": spec,
        "load_config": load_config,
        "applies": Applies(applies).value,
        "default_text": default_text,
        "suggest": suggest,
    }


class ModelPreset(BaseModel):
    """One section of ``models.ini``: the settings of one model (or of every model: ``[*]``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

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

    # ── Speculative decoding ─────────────────────────────────────────────────
    model_draft: OneLine = Field(
        default=None,
        alias="model-draft",
        min_length=1,
        title="Draft model",
        description="A small model with the same vocabulary that drafts tokens for this one "
        "(--model-draft): a catalogue key or a GGUF file",
        json_schema_extra=_opt(
            DRAFT,
            flags=("--model-draft",),
            names=("md", "spec-draft-model", "LLAMA_ARG_SPEC_DRAFT_MODEL", "LLAMA_ARG_MODEL_DRAFT"),
            default_text="none",
            suggest="models",
        ),
    )
    draft_max: int | None = Field(
        default=None,
        alias="draft-max",
        ge=0,
        title="Draft tokens (most)",
        description="Tokens the draft model proposes at a time (--spec-draft-n-max, "
        "--draft-max in older llama-server)",
        json_schema_extra=_opt(
            DRAFT,
            flags=("--spec-draft-n-max", "--draft-max"),
            names=("draft", "draft-n", "spec-draft-n-max", "LLAMA_ARG_SPEC_DRAFT_N_MAX"),
            default_text="3 (16 in older builds)",
        ),
    )
    draft_min: int | None = Field(
        default=None,
        alias="draft-min",
        ge=0,
        title="Draft tokens (fewest)",
        description="Fewest drafted tokens worth checking (--spec-draft-n-min, --draft-min "
        "in older llama-server)",
        json_schema_extra=_opt(
            DRAFT,
            flags=("--spec-draft-n-min", "--draft-min"),
            names=("draft-n-min", "spec-draft-n-min", "LLAMA_ARG_SPEC_DRAFT_N_MIN"),
            default_text="0",
        ),
    )
    n_gpu_layers_draft: Layers = Field(
        default=None,
        alias="n-gpu-layers-draft",
        ge=-1,
        title="Draft GPU layers",
        description="Layers of the draft model put on the GPU (--n-gpu-layers-draft); -1 = all",
        json_schema_extra=_opt(
            DRAFT,
            flags=("--n-gpu-layers-draft",),
            names=("ngld", "gpu-layers-draft", "spec-draft-ngl", "LLAMA_ARG_N_GPU_LAYERS_DRAFT"),
            default_text="as the model",
        ),
    )

    # ── Sampling defaults (a request's own values win) ───────────────────────
    temp: float | None = Field(
        default=None,
        alias="temp",
        ge=0,
        title="Temperature",
        description="Default sampling temperature (--temp); a request's own wins",
        json_schema_extra=_opt(
            SAMPLING,
            flags=("--temp",),
            names=("temperature", "LLAMA_ARG_TEMPERATURE"),
            default_text="0.8",
        ),
    )
    top_k: int | None = Field(
        default=None,
        alias="top-k",
        ge=0,
        title="Top-k",
        description="Default top-k sampling (--top-k); 0 = off",
        json_schema_extra=_opt(
            SAMPLING, flags=("--top-k",), names=("LLAMA_ARG_TOP_K",), default_text="40"
        ),
    )
    top_p: float | None = Field(
        default=None,
        alias="top-p",
        ge=0,
        le=1,
        title="Top-p",
        description="Default top-p sampling (--top-p); 1 = off",
        json_schema_extra=_opt(
            SAMPLING, flags=("--top-p",), names=("LLAMA_ARG_TOP_P",), default_text="0.95"
        ),
    )
    min_p: float | None = Field(
        default=None,
        alias="min-p",
        ge=0,
        le=1,
        title="Min-p",
        description="Default min-p sampling (--min-p); 0 = off",
        json_schema_extra=_opt(
            SAMPLING, flags=("--min-p",), names=("LLAMA_ARG_MIN_P",), default_text="0.05"
        ),
    )
    repeat_penalty: float | None = Field(
        default=None,
        alias="repeat-penalty",
        ge=0,
        title="Repeat penalty",
        description="Default repeat penalty (--repeat-penalty); 1 = off",
        json_schema_extra=_opt(
            SAMPLING,
            flags=("--repeat-penalty",),
            names=("LLAMA_ARG_REPEAT_PENALTY",),
            default_text="1.0",
        ),
    )

    # ── The app's own (llama-server never sees them) ─────────────────────────
    alias: Names = Field(
        default=None,
        alias="alias",
        min_length=1,
        title="Other names",
        description="More names clients may ask for this model by, comma-separated",
        json_schema_extra=_opt(APP, names=("a",), applies=NOW, default_text="none"),
    )
    ttl: int | None = Field(
        default=None,
        alias="ttl",
        ge=0,
        title="Unload when idle (seconds)",
        description="Unload this model after so many seconds without a request; 0 = never. "
        "A client's own ttl wins",
        json_schema_extra=_opt(APP, applies=NOW, default_text="Settings: IDLE_UNLOAD_MINUTES"),
    )
    load_on_startup: Switch = Field(
        default=None,
        alias="load-on-startup",
        title="Load at start",
        description="Load this model when the app starts",
        json_schema_extra=_opt(
            APP, names=("load-on-start",), applies=APP_START, default_text="off"
        ),
    )
    pinned: Switch = Field(
        default=None,
        alias="pinned",
        title="Pinned",
        description="Never unload this model to make room for another, nor when idle; only "
        "an explicit unload stops it",
        json_schema_extra=_opt(APP, applies=NOW, default_text="off"),
    )

    # ── Reading ──────────────────────────────────────────────────────────────
    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(self.alias.split(",")) if self.alias else ()

    def set_fields(self) -> dict[str, Any]:
        """The fields this preset sets, by field name."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    def over(self, base: ModelPreset) -> ModelPreset:
        """This preset laid over ``base``: what this one sets wins."""
        return ModelPreset.model_validate({**base.set_fields(), **self.set_fields()})

    def is_empty(self) -> bool:
        return not self.model_fields_set

    def by_key(self) -> dict[str, Any]:
        """What this preset sets, by the preset file's keys (``ctx-size``), in the model's
        order: for the API and ``--ps``."""
        fields = ModelPreset.model_fields
        return {
            fields[n].alias or n: getattr(self, n) for n in fields if n in self.model_fields_set
        }
