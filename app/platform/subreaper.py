"""On Linux the app becomes the *subreaper* of its descendants while a run lasts
(``PR_SET_CHILD_SUBREAPER``): an orphan of the run is handed to the app rather than to init,
so its PID stays the app's (not reusable) until the app has stopped and reaped it
(``process_groups.reap_zombies``)."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable

from app.platform.processes import libc_prctl

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36


def _prctl() -> Callable[..., int] | None:
    return libc_prctl() if sys.platform.startswith("linux") else None


class Subreaper:
    """``with Subreaper():`` the app is the subreaper of its descendants (Linux; elsewhere
    nothing happens and ``active`` stays False). Nested uses count; the last one out ends it."""

    _depth = 0
    _prctl_fn: Callable[..., int] | None = None

    def __init__(self, prctl: Callable[..., int] | None = None) -> None:
        self._fn = prctl

    @property
    def active(self) -> bool:
        return Subreaper._depth > 0 and self._call_fn() is not None

    def _call_fn(self) -> Callable[..., int] | None:
        if self._fn is None:
            if Subreaper._prctl_fn is None:
                Subreaper._prctl_fn = _prctl()
            self._fn = Subreaper._prctl_fn
        return self._fn

    def _set(self, on: bool) -> bool:
        fn = self._call_fn()
        if fn is None:
            return False
        if fn(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: %s", os.strerror(ctypes.get_errno()))
            return False
        return True

    def __enter__(self) -> Subreaper:
        if Subreaper._depth == 0:
            self._set(True)
        Subreaper._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        Subreaper._depth = max(0, Subreaper._depth - 1)
        if Subreaper._depth == 0:
            self._set(False)
