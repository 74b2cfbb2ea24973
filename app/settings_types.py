"""The forms a setting's text may need beyond its type (shell words, daily times, a comma
list, an on/off word), checked and tidied as pydantic reads the value; ``app.config`` uses
them as the types of its fields."""

from __future__ import annotations

import shlex
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator

_ON_OFF = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}


def _shell_words(v: str) -> str:
    try:
        shlex.split(v)
    except ValueError as e:
        raise ValueError(f"cannot be split into arguments ({e}); check the quotes") from e
    return v


def _comma_list(v: str) -> str:
    return ",".join(p.strip() for p in v.split(",") if p.strip())


def daily_times(v: str) -> list[tuple[int, int]]:
    """The times of day in ``v`` (HH:MM, comma-separated) as (hour, minute), sorted, each
    once; a ValueError names a part that is not one."""
    out = set()
    for part in filter(None, (p.strip() for p in v.split(","))):
        hh, sep, mm = part.partition(":")
        ok = sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60
        if not ok:
            raise ValueError(f"'{part}' is not a time of day; use HH:MM, e.g. 03:00,14:30")
        out.add((int(hh), int(mm)))
    return sorted(out)


def _daily_times(v: str) -> str:
    daily_times(v)
    return v


def _ports_open(v: object) -> object:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        v = v.strip().lower()
        return _ON_OFF.get(v, v)
    return v


# A command line, split like a shell (no shell runs it).
ShellWords = Annotated[str, AfterValidator(_shell_words)]
# Items separated by commas; blanks around them and empty items are dropped.
CommaList = Annotated[str, AfterValidator(_comma_list)]
# Times of day, HH:MM, comma-separated.
DailyTimes = Annotated[str, AfterValidator(_daily_times)]
# auto, or an on/off word (true/false, yes/no, on/off, 1/0).
PortsOpen = Annotated[Literal["auto", "true", "false"], BeforeValidator(_ports_open)]
