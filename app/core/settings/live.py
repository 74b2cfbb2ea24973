"""The settings in force, as one object every service reads and is told about on change."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.config import Settings

log = logging.getLogger(__name__)

SettingsListener = Callable[[Settings, Settings], None]


class LiveSettings:
    """Holds the current ``Settings``; ``set`` swaps them and tells the listeners (old, new)."""

    def __init__(self, settings: Settings) -> None:
        self._current = settings
        self._listeners: list[SettingsListener] = []

    def __call__(self) -> Settings:
        return self._current

    @property
    def current(self) -> Settings:
        return self._current

    def set(self, new: Settings) -> None:
        old, self._current = self._current, new
        for cb in list(self._listeners):
            try:
                cb(old, new)
            except Exception:
                log.exception("A settings listener failed")

    def subscribe(self, cb: SettingsListener) -> Callable[[], None]:
        self._listeners.append(cb)
        return lambda: self._listeners.remove(cb) if cb in self._listeners else None
