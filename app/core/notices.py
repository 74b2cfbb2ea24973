"""What the user must be told: failures with their reason and the log to read."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
        self._subs: list[Callable[[Notice], None]] = []
        self.history: list[Notice] = []

    def subscribe(self, cb: Callable[[Notice], None]) -> Callable[[], None]:
        self._subs.append(cb)
        return lambda: self._subs.remove(cb) if cb in self._subs else None

    def emit(self, notice: Notice) -> None:
        self.history = [*self.history[-99:], notice]
        level = {Level.INFO: logging.INFO, Level.WARNING: logging.WARNING}.get(
            notice.level, logging.ERROR
        )
        log.log(level, "%s: %s", notice.title, notice.text)
        for cb in list(self._subs):
            try:
                cb(notice)
            except Exception:
                log.exception("A notice subscriber failed")
