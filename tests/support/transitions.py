"""Catch illegal state changes the app only logged: a listener that raised
``IllegalTransitionError`` is logged by ``Listeners.emit``, not raised to the test."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from app.core.transitions import IllegalTransitionError


class _Seen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, IllegalTransitionError):
            self.found.append(str(exc))
        elif "is not allowed (from " in record.getMessage():
            self.found.append(record.getMessage())


@contextlib.contextmanager
def logged_illegal_transitions() -> Iterator[list[str]]:
    """The messages of the illegal transitions logged inside the block."""
    seen = _Seen()
    root = logging.getLogger()
    root.addHandler(seen)
    try:
        yield seen.found
    finally:
        root.removeHandler(seen)
