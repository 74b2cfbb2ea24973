"""Show every core Notice to the user as a tray balloon (the tray app's ``notifier``);
every notice is in the app log already (``NoticeBus`` logs it)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon

from app.core.notices import Level, Notice

log = logging.getLogger(__name__)

_ICONS = {
    Level.INFO: QSystemTrayIcon.MessageIcon.Information,
    Level.WARNING: QSystemTrayIcon.MessageIcon.Warning,
    Level.ERROR: QSystemTrayIcon.MessageIcon.Critical,
}


def notice_text(notice: Notice) -> str:
    text = notice.text
    if notice.log_path is not None:
        text += f"\nLog: {notice.log_path}"
    return text


class Notifier(QObject):
    """Base: records what was shown and emits ``shown(title, text)``; shows nothing itself."""

    shown = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.history: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.history = [*self.history[-49:], notice]
        self._show(notice)
        self.shown.emit(notice.title, notice_text(notice))

    def _show(self, notice: Notice) -> None:
        # No tray: the notice is already in the app log (NoticeBus logs it).
        pass


class TrayNotifier(Notifier):
    def __init__(self, tray: QSystemTrayIcon, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tray = tray

    def _show(self, notice: Notice) -> None:
        msecs = 15000 if notice.level is Level.ERROR else 6000
        self.tray.showMessage(notice.title, notice_text(notice), _ICONS[notice.level], msecs)
