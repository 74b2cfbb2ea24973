"""The preset file's keys and the fields of ``ModelPreset`` they name: every spelling
llama.cpp accepts (``c``, ``ngl``, ``LLAMA_ARG_CTX_SIZE``, ``no-mmap``), each field's
metadata, and the check the per-model form makes."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.core.presets.fields import ModelPreset


def extra(name: str) -> dict[str, Any]:
    """The ``json_schema_extra`` of field ``name``."""
    found = ModelPreset.model_fields[name].json_schema_extra
    assert isinstance(found, dict)
    return found


def key_of(name: str) -> str:
    """The preset file's key of field ``name`` (``ctx_size`` -> ``ctx-size``)."""
    return ModelPreset.model_fields[name].alias or name


KEYS: dict[str, str] = {key_of(name): name for name in ModelPreset.model_fields}


def _spellings() -> dict[str, tuple[str, bool]]:
    """Every key the preset file may use -> (field name, negated)."""
    out: dict[str, tuple[str, bool]] = {}
    for name in ModelPreset.model_fields:
        out[key_of(name)] = (name, False)
        for other in extra(name)["names"]:
            out[other] = (name, False)
        for neg in extra(name)["negative"]:
            out[neg] = (name, True)
    return out


SPELLINGS = _spellings()


def field_for_key(key: str) -> tuple[str, bool] | None:
    """(field name, negated) for a key of the preset file; None for an unknown key."""
    return SPELLINGS.get(key)


def known_keys() -> list[str]:
    """The canonical keys, in the model's order (for messages)."""
    return list(KEYS)


def field_errors(values: dict[str, str]) -> list[tuple[str, object, str]]:
    """(key, value, pydantic's message) for each value ``ModelPreset`` refuses (keys as the
    preset file names them); empty when all are valid. The per-model form checks with it."""
    try:
        ModelPreset.model_validate(values)
    except ValidationError as e:
        return [
            (str(err["loc"][0]) if err["loc"] else "?", err.get("input"), err["msg"].rstrip("."))
            for err in e.errors()
        ]
    return []
