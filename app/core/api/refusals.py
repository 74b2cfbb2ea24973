"""One line in the app log for each refused or failed API request (method, path, status, the
reason the client was given, its user agent), so a client that fails can be diagnosed from
the log; rate-limited, so a client in a loop cannot flood it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("app.core.api.refused")

BURST = 20  # lines logged at once before the limit applies
PER_SECOND = 1 / 3  # then one line every 3 s; the rest are counted and the count logged


class RefusalLog:
    """A token bucket over log lines: ``note`` logs or counts."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens = float(BURST)
        self._at = clock()
        self.suppressed = 0

    def note(self, line: str) -> bool:
        """Log ``line`` unless over the limit; True when it was logged."""
        now = self._clock()
        self._tokens = min(float(BURST), self._tokens + (now - self._at) * PER_SECOND)
        self._at = now
        if self._tokens < 1:
            self.suppressed += 1
            return False
        self._tokens -= 1
        if self.suppressed:
            line += f" ({self.suppressed} more refused or failed requests were not logged)"
            self.suppressed = 0
        log.warning(line)
        return True


REFUSALS = web.AppKey("familylog_refusals", RefusalLog)


def reason_of(resp: web.StreamResponse) -> str:
    """The message of a JSON error answer (ours, OpenAI's, Anthropic's or llama-server's)."""
    body = resp.body if isinstance(resp, web.Response) else None
    if not isinstance(body, bytes) or not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or "")[:300]


def describe(request: web.Request, status: int, reason: str) -> str:
    agent = request.headers.get("User-Agent", "")[:120] or "no user agent"
    peer = request.remote or "?"
    why = f": {reason}" if reason else ""
    word = "Failed" if status >= 500 else "Refused"
    what = f"{request.method} {request.path[:200]}"
    if request.headers.get("Upgrade", "").lower() == "websocket":
        what += " (a websocket: LM Studio's SDK namespaces are /system, /llm, /embedding)"
    return f"{word} {what} → {status}{why} (client {peer}, {agent})"


@web.middleware
async def log_refusals(request: web.Request, handler) -> web.StreamResponse:
    """The outermost middleware: sees every answer, the guard's refusals included."""
    resp = await handler(request)
    if resp.status >= 400:
        request.app[REFUSALS].note(describe(request, resp.status, reason_of(resp)))
    return resp
