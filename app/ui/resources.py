"""Find the bundled resources (icons) at run time: the repo's ``resources/`` next to
``app/``, or the copy PyInstaller unpacks under ``sys._MEIPASS``."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QIcon

from app.core.tray_state import TrayState


def resources_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    candidates = [Path(bundle) / "resources"] if bundle else []
    candidates.append(Path(__file__).resolve().parents[2] / "resources")
    for c in candidates:
        if (c / "icons").is_dir():
            return c
    raise FileNotFoundError(
        "The app's resources folder is missing (looked in "
        + ", ".join(map(str, candidates))
        + "); reinstall the app."
    )


def dark_panel() -> bool:
    """True when the desktop uses a dark colour scheme (so the icon needs a light glyph)."""
    app = QGuiApplication.instance()
    if app is None:
        return False
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hasattr(hints, "colorScheme") else None
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return QGuiApplication.palette().window().color().lightness() < 128


def icon_path(state: TrayState, dark: bool) -> Path:
    return resources_dir() / "icons" / f"{state.value}-{'dark' if dark else 'light'}.svg"


def state_icons(dark: bool) -> dict[TrayState, QIcon]:
    """One icon per tray state (the one place that maps states to icons)."""
    return {state: QIcon(str(icon_path(state, dark))) for state in TrayState}
