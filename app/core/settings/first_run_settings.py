"""A minimal dotenv writer for the first-run set-up: change some keys, keep everything else.

Existing lines (comments, blank lines, other keys, ``export KEY=...``) stay as they are; a key
that is already there is replaced in place (every occurrence, so no older copy wins); new
keys are appended. The file is written atomically. Values are quoted so that python-dotenv
(which the settings use) reads back exactly what was written.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.atomic import write_atomic

_LINE_KEY = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.]*)\s*=")
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./~-]*")


def quote(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value
    if "'" not in value and "\n" not in value and "\r" not in value and "\\" not in value:
        return f"'{value}'"  # single quotes: no escapes, no ${VAR} expansion
    if "${" in value:
        raise ValueError(f"{value!r} cannot be written to a dotenv file; remove the ${{")
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def update_dotenv(path: Path, updates: dict[str, str], header: str | None = None) -> None:
    """Set ``updates`` in the dotenv file ``path`` (created if missing, with ``header``)."""
    for key in updates:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{key!r} is not a setting name")
    try:
        text = path.read_text("utf-8")
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if lines and lines[-1] == "":
            lines.pop()
    except FileNotFoundError:
        lines = [f"# {line}" if line else "#" for line in header.splitlines()] if header else []
    done: set[str] = set()
    out: list[str] = []
    for line in lines:
        m = _LINE_KEY.match(line)
        key = m["key"] if m else None
        if key in updates:
            if key not in done:
                out.append(f"{key}={quote(updates[key])}")
                done.add(key)
            continue  # a later duplicate would override the new value: drop it
        out.append(line)
    for key, value in updates.items():
        if key not in done:
            out.append(f"{key}={quote(value)}")
    write_atomic(path, "\n".join(out) + "\n")
