"""Edit the app's settings file (dotenv) without losing what the app does not know.

``update_settings_file`` rewrites only the lines of the keys it changes, keeps every other
line (unknown keys, comments, blank lines) as it was, appends new keys at the end and
writes atomically. ``validate_changes`` checks values with the same pydantic ``Settings``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import ValidationError

from app.atomic import write_atomic
from app.config import Settings

_KEY_LINE = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=")
_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./~-]*$")


def quote(value: str) -> str:
    """A dotenv value python-dotenv reads back exactly."""
    if _PLAIN.fullmatch(value):  # not match: "$" would let a trailing newline through
        return value
    if "'" not in value and "\n" not in value and "\r" not in value and "\\" not in value:
        return f"'{value}'"  # single quotes: no escapes, no ${VAR} expansion
    if "${" in value:
        raise ValueError(f"{value!r} cannot be written to a dotenv file; remove the ${{")
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def update_settings_file(path: Path, changes: dict[str, str], header: str | None = None) -> None:
    """Set ``KEY=value`` for each change; everything else in the file is kept. A new file
    starts with ``header`` as comment lines."""
    for key in changes:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{key!r} is not a setting name")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = "".join(f"# {line}\n" if line else "#\n" for line in (header or "").splitlines())
    # "\n" only: str.splitlines would also split inside values at \x1c-\x1e, \x85, \u2028
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    pending = dict(changes)
    for i, line in enumerate(lines):
        m = _KEY_LINE.match(line)
        if m and m.group("key") in changes:
            key = m.group("key")
            if key in pending:
                lines[i] = f"{m.group('lead')}{key}={quote(pending.pop(key))}"
            else:  # a second definition of the same key would override ours: comment it out
                lines[i] = f"# {line}  (replaced by the line above)"
    if pending:
        if lines and lines[-1].strip():
            lines.append("")
        lines += [f"{k}={quote(v)}" for k, v in pending.items()]
    try:
        mode: int | None = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600  # it may hold API_KEY
    write_atomic(path, "\n".join(lines) + "\n", mode=mode)


def field_errors(changes: dict[str, str]) -> list[tuple[str, object, str]]:
    """(setting, value, pydantic's message) for each value in ``changes`` that
    ``Settings`` refuses; empty when all are valid."""
    try:
        Settings(_env_file=None, **changes)  # type: ignore[call-arg, arg-type]
    except ValidationError as e:
        return [
            (str(err["loc"][0]) if err["loc"] else "?", err.get("input"), err["msg"].rstrip("."))
            for err in e.errors()
        ]
    return []


def validate_changes(changes: dict[str, str]) -> str | None:
    """None when the values are valid settings; otherwise one readable line per problem."""
    problems = field_errors(changes)
    if not problems:
        return None
    return "\n".join(f"{name} = {value!r}: {msg}." for name, value, msg in problems)


def overridden_by_environment(keys: list[str]) -> list[str]:
    """Keys whose value in the environment wins over the settings file."""
    return [k for k in keys if k in os.environ]
