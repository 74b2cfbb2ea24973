"""The API's record of what it refused or failed: one log line per client address and reason
per minute, with the reason, the address, the request (method, path, user agent) and no
traceback, so a client that fails can be diagnosed from the log and a flood of bad requests
leaves an audit trail without filling it.

``Throttle`` is the "once per key per window" rule; ``RefusalLog`` writes the refusals of
the guard, the body reader and the connection layer through it, and ``log_refusals`` (the
outermost middleware) every other answer of 400 or more (an unknown path, a model not
found, llama-server's failure).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from aiohttp import web

log = logging.getLogger("app.core.api.refused")

WINDOW_SECONDS = 60.0
MAX_KEYS = 4096  # clients x reasons remembered; the oldest is forgotten first
# set on a request whose refusal was logged already
LOGGED = web.RequestKey("familylog_refusal_logged", bool)


class Throttle:
    """Says whether something may be logged now: once per key per ``window`` seconds."""

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[Hashable, list] = OrderedDict()  # key -> [logged at, held back]

    def due(self, key: Hashable) -> int | None:
        """None while ``key`` was logged less than a window ago (counted as held back);
        else the number held back since it was last logged (0 the first time)."""
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            seen[1] += 1
            return None
        held = seen[1] if seen is not None else 0
        self._seen[key] = [now, 0]
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return held


class RefusalLog:
    """Logs a refusal once per client address and reason per minute."""

    def __init__(self, throttle: Throttle | None = None, logger: logging.Logger = log) -> None:
        self.throttle = throttle or Throttle()
        self.log = logger

    def refused(
        self,
        client: str | None,
        reason: str,
        why: str,
        status: int | None = None,
        request: web.BaseRequest | None = None,
    ) -> None:
        """``reason``: the error code the client got; ``why``: the message, cut short;
        ``request``: the request it answered (its method, path and user agent are logged)."""
        why = _one_line(why)
        if request is not None:
            request[LOGGED] = True
            why += f" ({describe(request)})"
        client = client or "unknown address"
        held = self.throttle.due((client, reason))
        if held is None:
            return
        more = f" ({held} more like it since the last line)" if held else ""
        what = f"{status} {reason}" if status else reason
        word = "failed" if status is not None and status >= 500 else "refused"
        self.log.warning("API %s %s from %s: %s%s", word, what, client, why, more)

    def warn(self, key: str, message: str) -> None:
        """A warning about the server as a whole (out of connections), once per minute."""
        held = self.throttle.due(("", key))
        if held is not None:
            more = f" ({held} more times since the last line)" if held else ""
            self.log.warning("%s%s", message, more)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


REFUSALS = web.AppKey("familylog_refusals", RefusalLog)


def describe(request: web.BaseRequest) -> str:
    """The request in a log line: method, path (a websocket says what the SDK's are), agent."""
    agent = request.headers.get("User-Agent", "")[:120] or "no user agent"
    what = f"{request.method} {request.path[:200]}"
    if request.headers.get("Upgrade", "").lower() == "websocket":
        what += " (a websocket: LM Studio's SDK namespaces are /system, /llm, /embedding)"
    return f"{what}, {agent}"


def error_of(resp: web.StreamResponse) -> tuple[str, str]:
    """The code and message of a JSON error answer (ours, OpenAI's, Anthropic's or
    llama-server's); the status when it has no code."""
    code, message = str(resp.status), ""
    body = resp.body if isinstance(resp, web.Response) else None
    if isinstance(body, bytes) and body:
        try:
            data = json.loads(body)
        except ValueError:
            return code, body[:200].decode("utf-8", "replace")
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or error.get("type") or code)[:60]
            error = error.get("message")
        message = str(error or "")
    return code, message


@web.middleware
async def log_refusals(request: web.Request, handler) -> web.StreamResponse:
    """The outermost middleware: logs every answer of 400 or more that no inner layer
    (the guard, the body reader) logged already."""
    resp = await handler(request)
    if resp.status >= 400 and not request.get(LOGGED):
        code, message = error_of(resp)
        request.app[REFUSALS].refused(request.remote, code, message, resp.status, request)
    return resp
