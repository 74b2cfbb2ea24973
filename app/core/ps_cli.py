"""``familylog-tray --ps [--json]``: the running app's model processes, asked through its
API (``GET /api/v0/ps`` on ``API_HOST:API_PORT``, with ``API_KEY`` when one is set)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from app.config import Settings

EXIT_OK, EXIT_REFUSED, EXIT_NOT_RUNNING = 0, 1, 3
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
    "SPEED",
)


def _url(s: Settings) -> str:
    host = s.API_HOST
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening on every address: ask over loopback
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{s.API_PORT}/api/v0/ps"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "-"


def _speed(tps: float | None) -> str:
    return "-" if tps is None else f"{tps:.1f} t/s"


def _left(sec: float | None) -> str:
    if sec is None:
        return "never"
    m, s = divmod(int(sec), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def table(models: list[dict]) -> str:
    rows = [COLUMNS] + [
        (
            m["key"],
            m.get("role") or "-",
            m.get("type") or "-",
            m["state"],
            str(m["port"]),
            str(m.get("pid") or "-"),
            str(m.get("context_length") or "-"),
            _size(m.get("memory_bytes")),
            _left(m.get("idle_unload_in_seconds")),
            str(m.get("requests_served", 0)),
            _speed((m.get("speed") or {}).get("generation_tokens_per_second")),
        )
        for m in models
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def ps_command(s: Settings, *, as_json: bool) -> int:
    url = _url(s)
    req = urllib.request.Request(url)
    key = s.API_KEY.get_secret_value()
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(req, timeout=5) as r:
            models = json.load(r)["models"]
    except urllib.error.HTTPError as e:
        print(
            f"familylog-tray: the app at {url} answered {e.code}: {e.read()[:300]!r}",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        why = getattr(e, "reason", e)
        print(
            f"familylog-tray is not running (nothing answers at {url}: {why}). Start it "
            "(`familylog-tray`, or `familylog-tray --headless`), then try again.",
            file=sys.stderr,
        )
        return EXIT_NOT_RUNNING
    if as_json:
        print(json.dumps({"models": models}, indent=2))
    elif not models:
        print("no models loaded")
    else:
        print(table(models))
    return EXIT_OK
