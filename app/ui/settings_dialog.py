"""The settings dialog: every setting, one tab per group, built from the settings model
(``app/core/settings/form.py``), so a new setting appears without new code here.

Each value is checked with ``Settings`` as it is typed (the field turns red with
pydantic's message) and again when saved (``validate_changes``); saving writes the
changed keys to the settings file with unknown keys and comments kept, and hands the new
settings to the app, whose lines are shown: how each changed setting takes effect (at once,
from the next load of a model, after restart: said by its field) and the servers still
running with the old settings.
Applying never restarts a running server. A setting the environment sets is read-only.
The app applies them as a task on the event loop (``applying``): its buttons wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.config import Settings
from app.core.settings import form
from app.core.settings.settings_file import update_settings_file, validate_changes
from app.paths import AppPaths
from app.settings_load import load_settings
from app.ui.setting_editors import SettingEditor, add_form_tabs, add_save_row, say, tab_of, tab_page

MIN_WIDTH = 780
log = logging.getLogger(__name__)


class SettingsDialog(QDialog):
    def __init__(
        self,
        settings: Settings,
        paths: AppPaths,
        on_applied: Callable[[Settings], Awaitable[list[str]]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FamilyLog Tray: settings")
        self.paths = paths
        self.on_applied = on_applied
        self.applying: asyncio.Task[list[str]] | None = None  # the app applying the last save
        self.settings = settings
        self.editors: dict[str, SettingEditor] = {}
        self._loaded: dict[str, str] = {}
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.editors = add_form_tabs(self.tabs, form.form_fields(), self._check)
        layout.addWidget(self.tabs, 1)
        note = QLabel(f"Saved to {paths.settings_file}")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.message, self.buttons = add_save_row(layout, self._ok, self.reject, self.apply)
        self.load_values(settings)
        self._initial_size()

    def _initial_size(self) -> None:
        """Tall enough for the longest tab where the screen allows; the tabs scroll."""
        pages = [self.tab_page(i) for i in range(self.tabs.count())]
        tallest = max(p.sizeHint().height() for p in pages)
        chrome = self.sizeHint().height() - self.tabs.currentWidget().sizeHint().height()
        width, height = MIN_WIDTH, tallest + max(chrome, 0)
        screen = self.screen()
        if screen is not None:
            room = screen.availableGeometry()
            width, height = min(width, room.width()), min(height, int(room.height() * 0.9))
        self.resize(width, height)

    def tab_page(self, index: int) -> QWidget:
        """The form inside tab ``index``."""
        return tab_page(self.tabs, index)

    def tab_of(self, name: str) -> int:
        return tab_of(self.tabs, self.editors[name])

    # ── Values ───────────────────────────────────────────────────────────────
    def load_values(self, s: Settings) -> None:
        """Show ``s``; settings the environment sets become read-only."""
        for name, editor in self.editors.items():
            editor.set_read_only(form.environment_note(name))
            editor.set_text(form.to_text(getattr(s, name)))
            editor.show_error(None)
        self._loaded = self.values()

    def values(self) -> dict[str, str]:
        return {name: editor.text() for name, editor in self.editors.items()}

    def changes(self) -> dict[str, str]:
        """The values edited since they were shown (read-only ones never count)."""
        return {
            name: text
            for name, text in self.values().items()
            if text != self._loaded.get(name) and not self.editors[name].is_read_only()
        }

    def _check(self, name: str) -> None:
        editor = self.editors[name]
        if not editor.is_read_only():
            editor.show_error(form.field_error(name, editor.text()))

    # ── Saving ───────────────────────────────────────────────────────────────
    def apply(self) -> bool:
        """Validate, write, reload and hand the new settings to the app; False on a problem."""
        changes = self.changes()
        if not changes:
            self._say("Nothing changed.")
            return True
        problem = validate_changes(changes)
        if problem:
            for name in changes:
                self._check(name)
            wrong = [name for name in changes if self.editors[name].error]
            if wrong:
                self.tabs.setCurrentIndex(self.tab_of(wrong[0]))
            self._say(problem, error=True)
            return False
        try:
            update_settings_file(self.paths.settings_file, changes)
            new = load_settings(self.paths)
        except (OSError, ValueError) as e:  # SettingsError is a ValueError
            self._say(f"Could not save the settings: {e}", error=True)
            return False
        self.settings = new
        self.load_values(new)
        self._say("Saved; applying…")
        self.buttons.setEnabled(False)
        self.applying = asyncio.ensure_future(self._applied(new))
        return True

    async def _applied(self, new: Settings) -> list[str]:
        try:
            lines = await self.on_applied(new)
        except Exception as e:
            log.exception("Applying the saved settings failed")
            self._say(f"Saved, but applying them failed: {e}. Restart the app.", error=True)
            return []
        finally:
            self.buttons.setEnabled(True)
        self._say(" ".join(["Saved.", *lines]))
        return lines

    def _ok(self) -> None:
        if not self.apply():
            return
        if self.applying is None or self.applying.done():
            self.accept()
        else:
            self.applying.add_done_callback(lambda _t: self.accept())

    def _say(self, text: str, *, error: bool = False) -> None:
        say(self.message, text, error=error)
