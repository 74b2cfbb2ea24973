"""The settings dialog: edits the server and model settings, validated with ``Settings``,
written back to the settings file with unknown keys and comments kept. Applying never
restarts a running server: the dialog says which ones run with the old settings."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.config import Settings, SettingsError, load_settings
from app.core.settings.settings_file import (
    overridden_by_environment,
    update_settings_file,
    validate_changes,
)
from app.paths import AppPaths

GGUF = "GGUF models (*.gguf);;All files (*)"
# key, label, kind, extra
FIELDS: list[tuple[str, str, str, object]] = [
    ("LLAMA_SERVER_PATH", "llama-server binary", "file", "All files (*)"),
    ("VISION_MODEL_GGUF", "Vision model (.gguf)", "file", GGUF),
    ("VISION_MMPROJ", "Vision mmproj (.gguf)", "file", GGUF),
    ("VISION_MODEL_ID", "Vision model id", "text", None),
    ("LLM_MODEL_GGUF", "LLM model (.gguf)", "file", GGUF),
    ("LLM_MODEL_ID", "LLM model id", "text", None),
    ("LLAMA_VISION_PORT", "Vision port", "int", (1, 65535)),
    ("LLAMA_LLM_PORT", "LLM port", "int", (1, 65535)),
    ("LLAMA_PORT", "Single port (switch mode)", "int", (1, 65535)),
    ("LLAMA_GPU_LAYERS", "GPU layers (-1 = all)", "int", (-1, 9999)),
    ("LLAMA_CTX_SIZE", "Context size (0 = model's)", "int", (0, 10_000_000)),
    ("LLAMA_EXTRA_ARGS", "Extra llama-server arguments", "text", None),
    ("VISION_LOAD_AT_START", "Load the vision model at start", "bool", None),
    ("LLM_LOAD_AT_START", "Load the LLM at start", "bool", None),
]


class SettingsDialog(QDialog):
    def __init__(
        self,
        settings: Settings,
        paths: AppPaths,
        on_applied: Callable[[Settings], list[str]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FamilyLog Tray: settings")
        self.paths = paths
        self.on_applied = on_applied
        self.settings = settings
        self.editors: dict[str, QLineEdit | QSpinBox | QCheckBox] = {}
        layout = QVBoxLayout(self)
        form = QFormLayout()
        for key, label, kind, extra in FIELDS:
            form.addRow(label, self._editor(key, kind, extra))
        layout.addLayout(form)
        note = QLabel(f"Saved to {paths.settings_file}")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.hide()
        layout.addWidget(self.message)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._ok)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        layout.addWidget(self.buttons)
        self.load_values(settings)
        self.resize(640, self.sizeHint().height())

    def _editor(self, key: str, kind: str, extra: object) -> QWidget:
        if kind == "int":
            lo, hi = extra  # type: ignore[misc]
            w = QSpinBox()
            w.setRange(lo, hi)
            self.editors[key] = w
            return w
        if kind == "bool":
            w = QCheckBox()
            self.editors[key] = w
            return w
        line = QLineEdit()
        self.editors[key] = line
        if kind != "file":
            return line
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(line, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda _=False: self._browse(line, str(extra)))
        h.addWidget(browse)
        return row

    def _browse(self, line: QLineEdit, filt: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", line.text(), filt)
        if path:
            line.setText(path)

    def load_values(self, s: Settings) -> None:
        for key, w in self.editors.items():
            v = getattr(s, key)
            if isinstance(w, QSpinBox):
                w.setValue(int(v))
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(v))
            else:
                w.setText(str(v))

    def values(self) -> dict[str, str]:
        out = {}
        for key, w in self.editors.items():
            if isinstance(w, QSpinBox):
                out[key] = str(w.value())
            elif isinstance(w, QCheckBox):
                out[key] = "true" if w.isChecked() else "false"
            else:
                out[key] = w.text().strip()
        return out

    def changes(self) -> dict[str, str]:
        current = {k: v for k, v in self.values().items()}
        before = {}
        for key in current:
            v = getattr(self.settings, key)
            before[key] = ("true" if v else "false") if isinstance(v, bool) else str(v)
        return {k: v for k, v in current.items() if v != before[k]}

    def apply(self) -> bool:
        """Validate, write, reload and hand the new settings to the app; False on a problem."""
        changes = self.changes()
        if not changes:
            self._say("Nothing changed.")
            return True
        problem = validate_changes(changes)
        if problem:
            self._say(problem, error=True)
            return False
        try:
            update_settings_file(self.paths.settings_file, changes)
            new = load_settings(self.paths)
        except (OSError, SettingsError) as e:
            self._say(f"Could not save the settings: {e}", error=True)
            return False
        self.settings = new
        lines = self.on_applied(new)
        env = overridden_by_environment(list(changes))
        if env:
            lines.append(
                f"{', '.join(env)} also set in the environment, which wins over this file."
            )
        self._say("Saved. " + (" ".join(lines) if lines else "No running server is affected."))
        return True

    def _ok(self) -> None:
        if self.apply():
            self.accept()

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b00020;" if error else "")
        self.message.show()
