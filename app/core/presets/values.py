"""The forms a per-model setting's value takes in the preset file, as llama.cpp reads them:
switches (``true``/``on``/``1``/``enabled``), GPU layers (``all``), flash attention
(``on``/``off``/``auto``), values that fit on one line without a comment sign."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator

from app.settings_types import worker_addresses

TRUE_WORDS = ("true", "on", "enabled", "1", "yes")  # llama.cpp's is_truthy, and "yes"
FALSE_WORDS = ("false", "off", "disabled", "0", "no")
# what a value cannot hold: llama.cpp's reader ends a value at ; or # (a comment)
FORBIDDEN_IN_VALUE = (";", "#", "\n", "\r")


def _switch(v: object) -> object:
    if isinstance(v, str):
        word = v.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"'{v}' is not true or false (on/off, 1/0 also work)")
    return v


def _layers(v: object) -> object:
    if isinstance(v, str) and v.strip().lower() == "all":
        return -1
    if isinstance(v, str) and v.strip().lower() == "auto":
        raise ValueError("'auto' is not supported here; give a number (-1 or 'all' = all)")
    return v


def _on_off_auto(v: object) -> object:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, str):
        word = v.strip().lower()
        if word in TRUE_WORDS:
            return "on"
        if word in FALSE_WORDS:
            return "off"
        return word
    return v


def _one_line(v: object) -> object:
    if isinstance(v, str):
        v = v.strip()
        bad = [c for c in FORBIDDEN_IN_VALUE if c in v]
        if bad:
            raise ValueError(
                f"cannot hold {' or '.join(map(repr, bad))} (the preset file reads "
                "; and # as the start of a comment)"
            )
    return v


def _names(v: str | None) -> str | None:
    if v is None:
        return v
    names = [n.strip() for n in v.split(",") if n.strip()]
    if not names:
        raise ValueError("give at least one name")
    return ",".join(names)


def _workers(v: object) -> object:
    """llama.cpp RPC workers: ``host:port,host:port`` (a list of them from a load config)."""
    if isinstance(v, list | tuple) and all(isinstance(p, str) for p in v):
        v = ",".join(v)
    if isinstance(v, str):
        found = worker_addresses(_one_line(v))  # a ValueError names the part that is wrong
        if not found:
            raise ValueError("give at least one host:port, e.g. 192.168.1.20:50052")
        return ",".join(found)
    return v


Switch = Annotated[bool | None, BeforeValidator(_switch)]
Layers = Annotated[int | None, BeforeValidator(_layers)]
OnOffAuto = Annotated[Literal["on", "off", "auto"] | None, BeforeValidator(_on_off_auto)]
CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"] | None
OneLine = Annotated[str | None, BeforeValidator(_one_line)]
Names = Annotated[str | None, BeforeValidator(_one_line), AfterValidator(_names)]
Workers = Annotated[str | None, BeforeValidator(_workers)]
