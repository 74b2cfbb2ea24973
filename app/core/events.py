"""``Listeners``: how a core object tells others of its changes (the one listener list)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")

log = logging.getLogger(__name__)


class Listeners(Generic[P]):
    """The callbacks told of one kind of change, in the order they were added.

    ``Listeners[Notice]`` takes callbacks of one ``Notice``; ``Listeners[[]]`` of none.
    ``emit`` tells each in turn; one that raises is logged and the others are still told,
    so a failing window never stops the core. A callback may add or remove listeners while
    it is told: the next ``emit`` sees the change.
    """

    def __init__(self, what: str) -> None:
        self.what = what  # "notices", "port states": names the kind in the log
        self._callbacks: list[Callable[P, object]] = []

    def add(self, cb: Callable[P, object]) -> Callable[[], None]:
        """Tell ``cb`` of every change from now on; returns a function that stops it."""
        self._callbacks.append(cb)
        return lambda: self.remove(cb)

    def remove(self, cb: Callable[P, object]) -> None:
        """Stop telling ``cb`` (nothing when it is not listening)."""
        if cb in self._callbacks:
            self._callbacks.remove(cb)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for cb in list(self._callbacks):
            try:
                cb(*args, **kwargs)
            except Exception:
                log.exception("A listener of %s failed: %r", self.what, cb)

    def __len__(self) -> int:
        return len(self._callbacks)
