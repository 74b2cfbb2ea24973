"""The command line's calls to a running app's API (``API_HOST:API_PORT``, with ``API_KEY``
when one is set): ``--ps [--json]``, and ``--load`` / ``--unload`` when no tray answers
(a ``--headless`` app)."""

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


class NotRunning(Exception):
    """Nothing answers at the API's address."""


def _base(s: Settings) -> str:
    host = s.API_HOST
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening on every address: ask over loopback
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{s.API_PORT}"


def call(
    s: Settings, path: str, body: dict | None = None, timeout: float = 5.0
) -> tuple[int, dict]:
    """GET (or POST ``body``) ``path`` on the app's API: (status, JSON answer)."""
    url = _base(s) + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    key = s.API_KEY.get_secret_value()
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {}
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise NotRunning(f"nothing answers at {url}: {getattr(e, 'reason', e)}") from None


def _error(answer: dict) -> str:
    err = answer.get("error")
    return err.get("message", "") if isinstance(err, dict) else str(answer)[:300]


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
    try:
        status, answer = call(s, "/api/v0/ps")
    except NotRunning as e:
        print(
            f"familylog-tray is not running ({e}). Start it "
            "(`familylog-tray`, or `familylog-tray --headless`), then try again.",
            file=sys.stderr,
        )
        return EXIT_NOT_RUNNING
    models = answer.get("models")
    if status != 200 or not isinstance(models, list):
        print(f"familylog-tray: the app answered {status}: {_error(answer)}", file=sys.stderr)
        return EXIT_REFUSED
    if as_json:
        print(json.dumps({"models": models}, indent=2))
    elif not models:
        print("no models loaded")
    else:
        print(table(models))
    return EXIT_OK


def model_command(s: Settings, verb: str, key: str, ctx: int | None, wait: float) -> int:
    """``--load`` / ``--unload`` through the API of an app with no tray (``--headless``);
    raises ``NotRunning`` when nothing answers there either."""
    if verb == "load":
        body: dict = {"model": key}
        if ctx is not None:
            body["context_length"] = ctx
        status, answer = call(s, "/api/v1/models/load", body, timeout=wait)
        if status != 200:
            print(f"familylog-tray: {_error(answer)}", file=sys.stderr)
            return EXIT_REFUSED
        took = answer.get("load_time_seconds") or 0
        ctx_now = (answer.get("config") or {}).get("context_length")
        print(
            f"Loaded {key}"
            + (f" in {took:g} s" if took else " (it was loaded already)")
            + (f" (context {ctx_now} tokens)" if ctx_now else "")
        )
        return EXIT_OK
    if key == "all":
        status, answer = call(s, "/api/v0/ps")
        keys = [m["key"] for m in answer.get("models") or []] if status == 200 else []
    else:
        keys = [key]
    for k in keys:
        status, answer = call(s, "/api/v1/models/unload", {"instance_id": k}, timeout=wait)
        if status != 200 and not (key == "all" and status == 404):
            print(f"familylog-tray: {_error(answer)}", file=sys.stderr)
            return EXIT_REFUSED
    print(f"Unloaded {', '.join(keys)}" if keys else "No models were loaded; nothing to do.")
    return EXIT_OK
