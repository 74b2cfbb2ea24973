"""``familylog-tray --ps [--json]``: the models the running app has loaded, asked through
its API (``GET /api/v0/ps``), as a table like ``lms ps`` or as JSON."""

from __future__ import annotations

import json
import sys

from app.config import Settings
from app.core.api.client import AppNotRunningError, call, error_message
from app.core.units import memory_text
from app.exit_codes import ExitCode

COLUMNS = (
    "KEY",
    "ROLE",
    "TYPE",
    "STATE",
    "PORT",
    "PID",
    "CONTEXT",
    "MEMORY",
    "IDLE UNLOAD",
    "REQUESTS",
    "SETTINGS",
    "SPEED",
)


def _memory(n: int | None) -> str:
    return "-" if n is None else memory_text(n)


def _speed(tps: float | None) -> str:
    return "-" if tps is None else f"{tps:.1f} t/s"


def _left(sec: float | None) -> str:
    if sec is None:
        return "never"
    m, s = divmod(int(sec), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _settings(settings: dict | None) -> str:
    """What it runs with besides the context (its own column), as models.ini's keys: a
    draft model by its file name."""
    parts = []
    for key, value in (settings or {}).items():
        if key == "ctx-size":
            continue
        if key == "model-draft":
            value = str(value).replace("\\", "/").rsplit("/", 1)[-1]
        if isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{key}={value}")
    return ",".join(parts) or "-"


def table(models: list[dict]) -> str:
    rows = [COLUMNS] + [
        (
            m["key"],
            m.get("role") or "-",
            m.get("type") or "-",
            m["state"] + (f" ({m['file']})" if m.get("file") else ""),
            str(m["port"]),
            str(m.get("pid") or "-"),
            str(m.get("context_length") or "-"),
            _memory(m.get("memory_bytes")),
            _left(m.get("idle_unload_in_seconds")),
            str(m.get("requests_served", 0)),
            _settings(m.get("settings")),
            _speed((m.get("speed") or {}).get("generation_tokens_per_second")),
        )
        for m in models
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def ps_command(s: Settings, *, as_json: bool) -> int:
    try:
        status, answer = call(s, "/api/v0/ps")
    except AppNotRunningError as e:
        print(
            f"familylog-tray is not running ({e}). Start it "
            "(`familylog-tray`, or `familylog-tray --headless`), then try again.",
            file=sys.stderr,
        )
        return ExitCode.NOT_RUNNING
    models = answer.get("models")
    if status != 200 or not isinstance(models, list):
        print(
            f"familylog-tray: the app answered {status}: {error_message(answer)}",
            file=sys.stderr,
        )
        return ExitCode.REFUSED
    if as_json:
        print(json.dumps({"models": models}, indent=2))
    elif not models:
        print("no models loaded")
    else:
        print(table(models))
    return ExitCode.OK
