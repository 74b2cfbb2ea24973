"""What the user must be told: failures with their reason and the log to read."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.events import Listeners

log = logging.getLogger(__name__)


class Level(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Notice:
    level: Level
    title: str
    text: str
    log_path: Path | None = None


class NoticeBus:
    def __init__(self) -> None:
        self._listeners: Listeners[Notice] = Listeners("notices")
        self.history: list[Notice] = []

    def subscribe(self, cb: Callable[[Notice], None]) -> Callable[[], None]:
        return self._listeners.add(cb)

    def emit(self, notice: Notice) -> None:
        self.history = [*self.history[-99:], notice]
        level = {Level.INFO: logging.INFO, Level.WARNING: logging.WARNING}.get(
            notice.level, logging.ERROR
        )
        log.log(level, "%s: %s", notice.title, notice.text)
        self._listeners.emit(notice)
