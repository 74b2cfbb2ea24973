"""One editor per setting, chosen by its ``FormField``: a check box, a spin box, a combo
box, a password line edit, a line edit with Browse…, or a line edit. Every editor reads
and writes its value as the settings file's text; the help line under it shows the
description, a validation message (red) or why it is read-only."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.settings.form import (
    DECIMALS,
    FLOAT_RANGE,
    INT_RANGE,
    Browse,
    FormField,
    Kind,
    add_folder,
    to_text,
)
from app.core.settings.form import tabs as form_tabs

ERROR_COLOR = "#b00020"
ERROR_BACKGROUND = "#fde3e6"
HELP_COLOR = "#6b6b6b"


class _StepsWithinLimits:
    """A spin box whose arrows stop at the setting's limits while typing stays free, so a
    typed value out of the limits reaches the model and gets its message. The wheel only
    turns a focused box (scrolling the tab must not change values)."""

    step_limits: tuple[float, float] = (0, 0)

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        lo, hi = self.step_limits
        value = self.value() + steps * self.singleStep()  # type: ignore[attr-defined]
        self.setValue(type(self.value())(min(max(value, lo), hi)))  # type: ignore[attr-defined]

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:  # noqa: N802
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if self.isReadOnly():  # type: ignore[attr-defined]
            return flags
        lo, hi = self.step_limits
        if self.value() > lo:  # type: ignore[attr-defined]
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        if self.value() < hi:  # type: ignore[attr-defined]
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        return flags

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            event.ignore()


class IntBox(_StepsWithinLimits, QSpinBox):
    pass


class FloatBox(_StepsWithinLimits, QDoubleSpinBox):
    pass


class SettingEditor(QWidget):
    """The editor of one setting (plus its Browse… button); ``label`` and ``help`` are
    laid out by the dialog. ``edited`` fires on every change of the value."""

    edited = Signal()

    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.error: str | None = None
        self.read_only_note: str | None = None
        self.input = self._make_input(field)
        self.input.setObjectName(field.name)
        self.input.setToolTip(field.tooltip)
        self._palette = self.input.palette()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        if field.kind in (Kind.BOOL, Kind.INT, Kind.FLOAT, Kind.CHOICE):
            row.addWidget(self.input)  # short values; a check box toggles only on itself
            row.addStretch(1)
        else:
            row.addWidget(self.input, 1)
        self.browse: QPushButton | None = None
        if field.browse is not None:
            self.browse = QPushButton("Browse…")
            self.browse.setToolTip(f"Choose {field.title.lower()}")
            self.browse.clicked.connect(self._choose)
            row.addWidget(self.browse)
        self.label = QLabel(field.title)
        self.label.setToolTip(field.tooltip)
        self.label.setBuddy(self.input)
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.help.setTextFormat(Qt.TextFormat.PlainText)
        self.help.setToolTip(field.tooltip)
        small = self.help.font()
        small.setPointSizeF(small.pointSizeF() * 0.88)
        self.help.setFont(small)
        self._show_help()

    def _make_input(self, field: FormField) -> QWidget:
        if field.kind is Kind.BOOL:
            box = QCheckBox()
            box.toggled.connect(self.edited)
            return box
        if field.kind in (Kind.INT, Kind.FLOAT):
            spin: QSpinBox | QDoubleSpinBox
            if field.kind is Kind.INT:
                spin = IntBox()
                spin.setRange(*INT_RANGE)
            else:
                spin = FloatBox()
                spin.setDecimals(DECIMALS)
                spin.setRange(*FLOAT_RANGE)
            spin.step_limits = field.step_limits  # type: ignore[union-attr]
            spin.setMinimumWidth(160)
            spin.valueChanged.connect(self.edited)
            return spin
        if field.kind is Kind.CHOICE:
            combo = QComboBox()
            combo.addItems(list(field.choices))
            combo.setMinimumWidth(160)
            combo.currentTextChanged.connect(self.edited)
            return combo
        if field.suggest:  # typed, or chosen from what ``set_suggestions`` offers
            combo = QComboBox()
            combo.setEditable(True)
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            combo.currentTextChanged.connect(self.edited)
            return combo
        line = QLineEdit()
        if field.kind is Kind.SECRET:
            line.setEchoMode(QLineEdit.EchoMode.Password)
        line.textChanged.connect(self.edited)
        return line

    # ── The value, as the settings file's text ───────────────────────────────
    def text(self) -> str:
        w = self.input
        if isinstance(w, QCheckBox):
            return to_text(w.isChecked())
        if isinstance(w, QSpinBox | QDoubleSpinBox):
            return to_text(w.value())
        if isinstance(w, QComboBox):
            return w.currentText().strip() if w.isEditable() else w.currentText()
        assert isinstance(w, QLineEdit)
        return w.text().strip()

    def set_placeholder(self, text: str) -> None:
        """Show ``text`` instead of a value (a per-model setting left to a default that is no
        value of its own: "auto"); ``set_text`` shows a value again. Spin boxes and editable
        boxes only."""
        w = self.input
        if isinstance(w, QSpinBox | QDoubleSpinBox):
            w.setSpecialValueText(text)
            w.setValue(w.minimum())
        elif isinstance(w, QLineEdit):
            w.clear()
            w.setPlaceholderText(text)
        elif isinstance(w, QComboBox) and w.isEditable():
            w.setCurrentText("")
            w.lineEdit().setPlaceholderText(text)

    def showing_placeholder(self) -> bool:
        w = self.input
        if isinstance(w, QSpinBox | QDoubleSpinBox):
            return bool(w.specialValueText()) and w.value() == w.minimum()
        return False

    def set_text(self, text: str) -> None:
        w = self.input
        if isinstance(w, QSpinBox | QDoubleSpinBox):
            w.setSpecialValueText("")
        if isinstance(w, QCheckBox):
            w.setChecked(text == "true")
        elif isinstance(w, QSpinBox):
            w.setValue(int(text))
        elif isinstance(w, QDoubleSpinBox):
            w.setValue(float(text))
        elif isinstance(w, QComboBox):
            w.setCurrentText(text)
        else:
            assert isinstance(w, QLineEdit)
            w.setText(text)

    def set_suggestions(self, items: list[str] | tuple[str, ...]) -> None:
        """What an editor with suggestions offers to choose (its text is kept)."""
        w = self.input
        if not isinstance(w, QComboBox) or not w.isEditable():
            return
        text = w.currentText()
        w.blockSignals(True)
        w.clear()
        w.addItems(list(items))
        w.setCurrentText(text)
        w.blockSignals(False)

    # ── State ────────────────────────────────────────────────────────────────
    def set_read_only(self, note: str | None) -> None:
        """Read-only with ``note`` saying why; editable again with None."""
        self.read_only_note = note
        w = self.input
        if isinstance(w, QLineEdit | QAbstractSpinBox):
            w.setReadOnly(note is not None)
        else:
            w.setEnabled(note is None)
        if self.browse is not None:
            self.browse.setEnabled(note is None)
        self._show_help()

    def is_read_only(self) -> bool:
        return self.read_only_note is not None

    def show_error(self, message: str | None) -> None:
        """Turn the field red with ``message`` under it; back to normal with None."""
        self.error = message
        palette = QPalette(self._palette)
        if message:
            palette.setColor(QPalette.ColorRole.Base, QColor(ERROR_BACKGROUND))
        self.input.setPalette(palette)
        self.input.setProperty("invalid", bool(message))
        self._show_help()

    def _show_help(self) -> None:
        text = self.error or self.field.description
        if self.read_only_note:
            text += f"\n{self.read_only_note}"
        self.help.setText(text)
        self.help.setStyleSheet(f"color: {ERROR_COLOR if self.error else HELP_COLOR};")

    # ── Browse… ──────────────────────────────────────────────────────────────
    def _choose(self) -> None:
        current = self.text()
        title = f"Choose {self.field.title.lower()}"
        if self.field.browse is Browse.FILE:
            chosen, _ = QFileDialog.getOpenFileName(self, title, current, self.field.file_filter)
        else:
            start = current if self.field.browse is Browse.FOLDER else ""
            chosen = QFileDialog.getExistingDirectory(self, title, start)
        if not chosen:
            return
        if self.field.browse is Browse.FOLDERS:
            chosen = add_folder(current, chosen)
        self.set_text(chosen)


def add_form_tabs(
    tabs: QTabWidget,
    fields: list[FormField],
    on_edit: Callable[[str], None],
    label: Callable[[SettingEditor], QWidget] | None = None,
) -> dict[str, SettingEditor]:
    """One tab per group of ``fields`` (``form.tabs``), each a scrolling grid of rows: the
    label (``label(editor)``, else the editor's own), the editor, its help line under it;
    ``on_edit(name)`` on every change. The editors by field name. Settings… and a model's
    Settings… are both built by it."""
    editors: dict[str, SettingEditor] = {}
    for group, group_fields in form_tabs(fields):
        page = QWidget()
        grid = QGridLayout(page)
        grid.setVerticalSpacing(2)
        grid.setColumnStretch(1, 1)
        for i, field in enumerate(group_fields):
            editor = SettingEditor(field)
            editor.help.setContentsMargins(0, 0, 0, 8)
            editor.edited.connect(partial(on_edit, field.name))
            editors[field.name] = editor
            grid.addWidget(label(editor) if label else editor.label, 2 * i, 0)
            grid.addWidget(editor, 2 * i, 1)
            grid.addWidget(editor.help, 2 * i + 1, 1)
        grid.setRowStretch(2 * len(group_fields), 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(page)
        tabs.addTab(scroll, group)
    return editors


def tab_page(tabs: QTabWidget, index: int) -> QWidget:
    """The form inside tab ``index`` (its scroll area's widget)."""
    scroll = tabs.widget(index)
    assert isinstance(scroll, QScrollArea)
    return scroll.widget()


def tab_of(tabs: QTabWidget, widget: QWidget) -> int:
    """The tab that holds ``widget``."""
    return next(i for i in range(tabs.count()) if tab_page(tabs, i).isAncestorOf(widget))


def add_save_row(
    layout: QVBoxLayout,
    ok: Callable[[], None],
    cancel: Callable[[], None],
    apply: Callable[[], object],
) -> tuple[QLabel, QDialogButtonBox]:
    """The foot of a settings dialog, added to ``layout``: its message line (hidden until
    ``say``) and its OK / Apply / Cancel buttons. Settings… and a model's Settings… share it."""
    message = QLabel()
    message.setWordWrap(True)
    message.hide()
    layout.addWidget(message)
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok
        | QDialogButtonBox.StandardButton.Apply
        | QDialogButtonBox.StandardButton.Cancel
    )
    buttons.accepted.connect(ok)
    buttons.rejected.connect(cancel)
    buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(apply)
    layout.addWidget(buttons)
    return message, buttons


def say(message: QLabel, text: str, *, error: bool = False) -> None:
    """Show ``text`` in a dialog's message line, in the error colour for a problem."""
    message.setText(text)
    message.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")
    message.show()
