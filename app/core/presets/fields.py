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
value takes are ``values.py``'s; the keys' spellings and lookups are ``keys.py``'s; the tabs
and ``opt``, which fills ``json_schema_extra``, are ``field_meta.py``'s; the "Load" fields
are ``load_fields.py``'s (``ModelPreset`` inherits them, first).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from app.core.presets.field_meta import APP, APP_START, DRAFT, NOW, SAMPLING
from app.core.presets.field_meta import opt as _opt
from app.core.presets.load_fields import LoadFields
from app.core.presets.values import Layers, Names, OneLine, Switch


class ModelPreset(LoadFields):
    """One section of ``models.ini``: the settings of one model (or of every model: ``[*]``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

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
