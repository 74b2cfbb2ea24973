"""What a preset field says of itself (its tab, spellings, flags, when it applies): ``opt``."""

from __future__ import annotations

from typing import Any

from app.config import Applies

LOAD = "Load"
DRAFT = "Speculative decoding"
SAMPLING = "Sampling"
APP = "This app"
PRESET_GROUPS = (LOAD, DRAFT, SAMPLING, APP)

# when a change takes effect, as the app's settings say it (``Applies``)
NEXT_LOAD, NOW, APP_START = Applies.NEXT_LOAD, Applies.NOW, Applies.RESTART


def opt(
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
    """A field's ``json_schema_extra``, in tab ``group`` (``fields.py``'s docstring says
    what each key means)."""
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
