"""The tray icon: one icon per state, a tooltip in words, clicks."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from app.core.tray_state import TrayState
from app.ui.resources import dark_panel, state_icons


class Tray(QObject):
    """Wraps QSystemTrayIcon; ``set_state`` skips ``setIcon`` when nothing changed."""

    clicked = Signal()  # left click / activation: open the models window

    def __init__(self, menu: QMenu, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.icons: dict[TrayState, QIcon] = state_icons(dark_panel())
        self.state: TrayState | None = None
        self.icon = QSystemTrayIcon(self)
        self.set_menu(menu)
        self.icon.activated.connect(self._activated)
        self.set_state(TrayState.IDLE)
        self.set_tooltip("FamilyLog Tray")

    def set_menu(self, menu: QMenu) -> None:
        self.menu = menu  # the icon does not own its menu: keep it alive
        self.icon.setContextMenu(menu)

    def set_state(self, state: TrayState) -> None:
        if state is self.state:
            return
        self.state = state
        self.icon.setIcon(self.icons[state])

    def set_tooltip(self, text: str) -> None:
        text = f"FamilyLog Tray\n{text}" if not text.startswith("FamilyLog Tray") else text
        if self.icon.toolTip() != text:
            self.icon.setToolTip(text)

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.clicked.emit()
