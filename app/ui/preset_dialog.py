"""Settings… of one model: its own section of ``models.ini``, a form built from the preset
model (``app/core/presets/fields.py``) by the same form data and editors as the main
Settings dialog, one tab per group.

Each setting has a check box: ticked, the model has its own value (written to its section);
clear, the default applies and is shown greyed (the ``[*]`` section, the app's settings, or
llama-server's own). Values are checked as they are typed, the draft model against the
model's vocabulary as it is chosen; Save writes the section and keeps the rest of the file.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.presets.fields import ModelPreset
from app.core.presets.keys import field_errors
from app.core.presets.service import DRAFT_KEY, Model, PresetForm, Presets, applies_words
from app.core.settings import form
from app.ui.setting_editors import (
    ERROR_COLOR,
    SettingEditor,
    add_form_tabs,
    add_save_row,
    say,
    tab_of,
)

MIN_WIDTH = 720


class PresetDialog(QDialog):
    def __init__(
        self,
        presets: Presets,
        model: Model,
        title: str,
        on_saved: Callable[[], list[str]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.presets = presets
        self.model = model
        self.on_saved = on_saved
        self.setWindowTitle(f"Settings of {title}")
        self.editors: dict[str, SettingEditor] = {}
        self.own: dict[str, QCheckBox] = {}
        self.data: PresetForm = presets.form(model)
        layout = QVBoxLayout(self)
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        layout.addWidget(self.intro)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(f"color: {ERROR_COLOR};")
        layout.addWidget(self.problem)
        self.tabs = QTabWidget()
        self.editors = add_form_tabs(
            self.tabs, form.form_fields(ModelPreset), self._check, label=self._own_box
        )
        layout.addWidget(self.tabs, 1)
        self.message, self.buttons = add_save_row(layout, self._ok, self.reject, self.apply)
        self.show_form(self.data)
        self.resize(MIN_WIDTH, min(self.sizeHint().height(), 720))

    def _own_box(self, editor: SettingEditor) -> QCheckBox:
        """The row's label: a check box, ticked when the model has its own value."""
        key = editor.field.name
        own = QCheckBox(editor.field.title)
        own.setObjectName(f"own:{key}")
        own.setToolTip(editor.field.tooltip)
        own.toggled.connect(partial(self._own_toggled, key))
        self.own[key] = own
        return own

    # ── Values ───────────────────────────────────────────────────────────────
    def show_form(self, data: PresetForm) -> None:
        self.data = data
        self.intro.setText(
            f"Saved in {data.path} as [{data.section}]. Tick a setting to give this model its "
            "own value; the others follow the defaults shown."
        )
        self.problem.setText(data.problem or "")
        self.problem.setVisible(bool(data.problem))
        for key, editor in self.editors.items():
            if key == DRAFT_KEY:
                editor.set_suggestions(data.drafts)
            own = key in data.values
            self._show_value(key, data.values.get(key) or data.defaults.get(key))
            self.own[key].blockSignals(True)
            self.own[key].setChecked(own)
            self.own[key].blockSignals(False)
            self._show_own(key)
            editor.show_error(None)

    def _show_value(self, key: str, text: str | None) -> None:
        """``text`` in the editor; none: the default's words, where no value says it."""
        editor = self.editors[key]
        if text is None:
            editor.set_placeholder(self.data.notes.get(key) or "default")
            return
        try:
            editor.set_text(text)
        except ValueError:  # a value the editor cannot show (the help line says why)
            pass

    def _own_toggled(self, key: str, checked: bool) -> None:
        editor = self.editors[key]
        if not checked:  # back to the default: show it
            self._show_value(key, self.data.defaults.get(key))
        elif editor.showing_placeholder():  # a value to start from: the lowest allowed
            low = editor.field.minimum
            editor.set_text(form.number_text(low if low is not None else 0))
        self._show_own(key)
        self._check(key)

    def _show_own(self, key: str) -> None:
        editor = self.editors[key]
        if self.own[key].isChecked():
            editor.set_read_only(None)
        else:
            editor.set_read_only(f"Not set: {self.data.notes.get(key) or 'the default'}.")

    def values(self) -> dict[str, str]:
        """The model's own values: the ticked settings, as the file's text."""
        return {k: e.text() for k, e in self.editors.items() if self.own[k].isChecked()}

    def changed(self) -> bool:
        return self.values() != self.data.values

    def _check(self, key: str) -> None:
        editor = self.editors[key]
        if not self.own[key].isChecked():
            editor.show_error(None)
            return
        text = editor.text()
        error = form.field_error(key, text, field_errors)
        if error is None and key == DRAFT_KEY and text:
            why = self.presets.draft_error(self.model, text)
            error = f"{why}." if why else None
        editor.show_error(error)

    # ── Saving ───────────────────────────────────────────────────────────────
    def apply(self) -> bool:
        """Check, write the model's section, show what applies when; False on a problem."""
        values = self.values()
        if not self.changed():
            self._say("Nothing changed.")
            return True
        errors = self.presets.check(self.model, values)
        if errors:
            for key, msg in errors.items():
                if key in self.editors:
                    self.editors[key].show_error(msg)
            first = next(iter(errors))
            self.tabs.setCurrentIndex(self.tab_of(first))
            self._say("\n".join(f"{k}: {m}" for k, m in errors.items()), error=True)
            return False
        before = set(self.data.values.items())
        changed = {k for k, _ in before ^ set(values.items())}
        try:
            self.presets.save(self.model, values)
        except (OSError, ValueError) as e:  # PresetError is a ValueError
            self._say(f"Could not save: {e}", error=True)
            return False
        lines = self.on_saved() if self.on_saved else []
        self.show_form(self.presets.form(self.model))
        self._say(" ".join(["Saved.", applies_words(changed), *lines]).strip())
        return True

    def tab_of(self, key: str) -> int:
        return tab_of(self.tabs, self.editors[key])

    def _ok(self) -> None:
        if self.apply():
            self.accept()

    def _say(self, text: str, *, error: bool = False) -> None:
        say(self.message, text, error=error)
