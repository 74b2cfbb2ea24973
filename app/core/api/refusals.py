"""The API's record of what it refused: one log line per client address and reason per
minute, with the reason and the address and no traceback, so a flood of bad requests
leaves an audit trail without filling the log.

``Throttle`` is the "once per key per window" rule; ``RefusalLog`` writes the refusals of
the guard, the body reader and the connection layer through it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

log = logging.getLogger("app.core.api.refused")

WINDOW_SECONDS = 60.0
MAX_KEYS = 4096  # clients x reasons remembered; the oldest is forgotten first


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

    def refused(self, client: str | None, reason: str, why: str, status: int | None = None) -> None:
        """``reason``: the error code the client got; ``why``: the message, cut short."""
        client = client or "unknown address"
        held = self.throttle.due((client, reason))
        if held is None:
            return
        more = f" ({held} more like it since the last line)" if held else ""
        what = f"{status} {reason}" if status else reason
        self.log.warning("API refused %s from %s: %s%s", what, client, _one_line(why), more)

    def warn(self, key: str, message: str) -> None:
        """A warning about the server as a whole (out of connections), once per minute."""
        held = self.throttle.due(("", key))
        if held is not None:
            more = f" ({held} more times since the last line)" if held else ""
            self.log.warning("%s%s", message, more)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
