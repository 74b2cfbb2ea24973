"""The one mapping between per-model settings and llama-server's command line, both ways.

``preset_args`` turns a ``ModelPreset`` into llama-server options; ``read_args`` reads a
command line back into the ``ModelPreset`` it runs with (the last of a repeated option wins,
as in llama-server), which is what ``--ps``, the API and the models window show. LM Studio's
load config is a ``ModelPreset`` too (``from_load_config``), so a request's config is laid
over a model's preset and mapped by the same table: the fields' own metadata
(``app/core/presets/fields.py``).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from app.core.presets.fields import ModelPreset
from app.core.presets.keys import extra, key_of

# llama.cpp's speculative type for a draft model; builds before it chose by ``-md`` alone
SPEC_TYPE_FLAG = "--spec-type"
SPEC_TYPE_DRAFT = "draft-simple"

Known = frozenset[str] | None  # the options the binary takes; None: not known, assume newest


class LoadConfigLike(Protocol):
    """LM Studio's load config (``launch_args.LoadConfig``): the fields the metadata names."""

    context_length: int | None
    flash_attention: bool | None
    eval_batch_size: int | None
    offload_kv_cache_to_gpu: bool | None
    parallel: int | None
    gpu_layers: int | None
    rpc: tuple[str, ...] | None


def _pick(flags: Sequence[str], known: Known) -> str | None:
    """The first of ``flags`` the binary takes (the first when that is not known)."""
    if not flags:
        return None
    if known is None:
        return flags[0]
    return next((f for f in flags if f in known), None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_server_option(name: str) -> bool:
    """True for a field that becomes a llama-server option in the extra arguments (not one
    the manager passes itself, like the context size, nor one of the app's own keys)."""
    meta = extra(name)
    return not meta["spec"] and bool(meta["flags"] or meta["off_flags"])


def preset_args(preset: ModelPreset, known: Known = None) -> list[str]:
    """llama-server's options for what ``preset`` sets (the context size and GPU layers are
    the manager's arguments; the app's own keys are no options). ``model_draft`` must be a
    file path here. An option the binary does not take is left out."""
    out: list[str] = []
    for name in ModelPreset.model_fields:
        if name not in preset.model_fields_set or not is_server_option(name):
            continue
        meta = extra(name)
        value = getattr(preset, name)
        if isinstance(value, bool):
            flag = _pick(meta["flags"] if value else meta["off_flags"], known)
            if flag:  # none: the binary's default is that value already
                out.append(flag)
            continue
        flag = _pick(meta["flags"], known)
        if flag:
            out += [flag, _text(value)]
    if preset.model_draft and (known is None or SPEC_TYPE_FLAG in known):
        out += [SPEC_TYPE_FLAG, SPEC_TYPE_DRAFT]
    return out


def _spellings() -> dict[str, tuple[str, str]]:
    """Every command-line spelling -> (field name, "value" | "on" | "off")."""
    out: dict[str, tuple[str, str]] = {}
    for name in ModelPreset.model_fields:
        meta = extra(name)
        if not (meta["spec"] or meta["flags"] or meta["off_flags"]):
            continue
        annotation = ModelPreset.model_fields[name].annotation
        is_bool = annotation is bool or bool in typing.get_args(annotation)
        kind = "on" if is_bool else "value"
        out.setdefault("--" + key_of(name), (name, kind))
        for word in meta["names"]:
            if not word.isupper():  # not an environment variable
                out.setdefault(_dashed(word), (name, kind))
        for neg in meta["negative"]:
            out.setdefault(_dashed(neg), (name, "off"))
        for f in meta["flags"]:
            out.setdefault(f, (name, kind))
        for f in meta["off_flags"]:
            out.setdefault(f, (name, "off"))
    return out


def _dashed(word: str) -> str:
    """A spelling as an option: llama-server's short ones (up to 4 letters) take one dash."""
    return ("-" if len(word) <= 4 else "--") + word


_CLI = _spellings()


def _valid(name: str, value: Any) -> bool:
    try:
        ModelPreset.model_validate({name: value})
    except ValidationError:
        return False
    return True


def read_args(args: Iterable[str]) -> ModelPreset:
    """The settings a llama-server command line runs with (what it sets; the last of a
    repeated option wins, as in llama-server). ``--spec-type`` and unknown options are
    passed over; a value that is not valid for its option is ignored."""
    args = list(args)
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        hit = _CLI.get(args[i])
        i += 1
        if hit is None:
            continue
        name, kind = hit
        if kind != "value":
            values[name] = kind == "on"
            continue
        nxt = args[i] if i < len(args) else None
        if nxt is not None and _valid(name, nxt):
            values[name] = nxt
            i += 1
        elif name == "flash_attn":  # a bare -fa (llama-server before on/off/auto): on
            values[name] = "on"
    return ModelPreset.model_validate(values)


def from_load_config(config: LoadConfigLike | None) -> ModelPreset:
    """LM Studio's load config as a preset (only what it sets)."""
    values: dict[str, Any] = {}
    if config is not None:
        for name in ModelPreset.model_fields:
            field = extra(name)["load_config"]
            value = getattr(config, field) if field else None
            if value is not None:
                values[name] = value
    return ModelPreset.model_validate(values)


def load_config_values(preset: ModelPreset) -> dict[str, Any]:
    """The load config fields of ``preset`` (``LoadConfig(**load_config_values(p))``)."""
    out: dict[str, Any] = {}
    for name in ModelPreset.model_fields:
        field = extra(name)["load_config"]
        value = getattr(preset, name)
        if name == "flash_attn":  # LM Studio's is a bool: "auto" is no choice
            value = {"on": True, "off": False}.get(str(value))
        if name == "rpc" and value is not None:  # the load config's is a tuple of them
            value = tuple(value.split(","))
        if field and value is not None:
            out[field] = value
    return out
