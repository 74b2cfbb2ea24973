"""The settings in force, as one object every service reads (a ``SettingsSource``)."""

from __future__ import annotations

from collections.abc import Callable

from app.config import Settings
from app.core.events import Listeners


class LiveSettings:
    """Holds the current ``Settings``; ``set`` swaps them. Services call it at each use
    (``live()``), so a change applied in Settings… reaches them without being told; a
    service that must act on a change (start or stop a process) ``subscribe``s."""

    def __init__(self, settings: Settings) -> None:
        self._current = settings
        self._listeners: Listeners[Settings, Settings] = Listeners("settings changes")

    def __call__(self) -> Settings:
        return self._current

    @property
    def current(self) -> Settings:
        return self._current

    def set(self, new: Settings) -> None:
        old, self._current = self._current, new
        self._listeners.emit(old, new)

    def subscribe(self, cb: Callable[[Settings, Settings], object]) -> Callable[[], None]:
        """``cb(old, new)`` after each ``set``; returns a function that stops it."""
        return self._listeners.add(cb)
