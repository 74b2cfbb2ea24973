"""The settings in force, as one object every service reads (a ``SettingsSource``)."""

from __future__ import annotations

from app.config import Settings


class LiveSettings:
    """Holds the current ``Settings``; ``set`` swaps them. Services call it at each use
    (``live()``), so a change applied in Settings… reaches them without being told."""

    def __init__(self, settings: Settings) -> None:
        self._current = settings

    def __call__(self) -> Settings:
        return self._current

    @property
    def current(self) -> Settings:
        return self._current

    def set(self, new: Settings) -> None:
        self._current = new
