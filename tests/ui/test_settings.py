"""The settings file helper and the settings dialog (every setting, one tab per group)."""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from pathlib import Path

import pytest
from dotenv import dotenv_values
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from app.config import GROUPS, Settings
from app.core.servers.states import ServerState
from app.core.settings import form
from app.core.settings.form import Kind
from app.core.settings.settings_file import quote, update_settings_file, validate_changes
from app.paths import AppPaths
from app.settings_load import load_settings
from app.ui.setting_editors import ERROR_BACKGROUND, SettingEditor
from app.ui.settings_dialog import SettingsDialog

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

ORIGINAL = """\
# My FamilyLog tray settings
LLM_MODEL_GGUF=/models/old.gguf
export LLAMA_CTX_SIZE=4096
SOME_FUTURE_KEY=keep me  # a comment the app does not know

# API
API_KEY='s3cret'
LLAMA_CTX_SIZE=2048
"""


def test_update_keeps_unknown_keys_and_comments(tmp_path) -> None:
    (tmp_path / "cfg").mkdir()
    f = tmp_path / "cfg" / "settings.env"
    f.write_text(ORIGINAL)
    f.chmod(0o600)
    update_settings_file(
        f,
        {
            "LLM_MODEL_GGUF": "/models/My Model Q4.gguf",
            "LLAMA_CTX_SIZE": "8192",
            "LLAMA_EXTRA_ARGS": "--alias 'my model' --flash-attn on",
        },
    )
    text = f.read_text()
    assert "# My FamilyLog tray settings" in text
    assert "SOME_FUTURE_KEY=keep me  # a comment the app does not know" in text
    assert "# API" in text and "API_KEY='s3cret'" in text
    assert "export LLAMA_CTX_SIZE=8192" in text
    assert "# LLAMA_CTX_SIZE=2048  (replaced by the line above)" in text
    values = dotenv_values(f)
    assert values["LLM_MODEL_GGUF"] == "/models/My Model Q4.gguf"
    assert values["LLAMA_CTX_SIZE"] == "8192"
    assert values["LLAMA_EXTRA_ARGS"] == "--alias 'my model' --flash-attn on"
    assert values["SOME_FUTURE_KEY"] == "keep me"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert [p.name for p in f.parent.iterdir()] == ["settings.env"]  # no temp file left


def test_quote_round_trips(tmp_path) -> None:
    f = tmp_path / "s.env"
    odd = ["plain", "", "with space", "it's", 'say "hi" it\'s', "a#b", "C:\\models\\x.gguf"]
    update_settings_file(f, {f"K{i}": v for i, v in enumerate(odd)})
    values = dotenv_values(f)
    assert [values[f"K{i}"] for i in range(len(odd))] == odd
    assert quote("/models/a.gguf") == "/models/a.gguf"


def test_validation_uses_the_settings_model() -> None:
    assert validate_changes({"LLAMA_CTX_SIZE": "8192", "LLAMA_LLM_PORT": "8082"}) is None
    problem = validate_changes({"LLAMA_LLM_PORT": "70000", "LLAMA_EXTRA_ARGS": "--alias 'x"})
    assert "LLAMA_LLM_PORT = '70000'" in problem and "65535" in problem
    assert "LLAMA_EXTRA_ARGS" in problem and "quotes" in problem


def test_dialog_applies_and_names_servers_with_old_settings(
    make_app, arun, tiny_model, tiny_model_b, port
) -> None:
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text("# mine\nUNKNOWN_THING=1\n")
    app = make_app(LLM_MODEL_GGUF=str(tiny_model))
    arun(app.load(app.core.catalogue.role("llm").key))
    assert app.core.manager.status(port).state is ServerState.READY

    app.show_settings()
    dlg = app.settings_dialog
    dlg.editors["LLAMA_CTX_SIZE"].input.setValue(1024)
    dlg.editors["LLAMA_EXTRA_ARGS"].input.setText("--alias 'broken")
    assert dlg.apply() is False
    assert "LLAMA_EXTRA_ARGS" in dlg.message.text()
    assert "LLAMA_CTX_SIZE=1024" not in paths.settings_file.read_text()  # nothing written

    dlg.editors["LLAMA_EXTRA_ARGS"].input.setText("")
    shown = []
    app.notifier.shown.connect(lambda t, x: shown.append((t, x)))
    assert dlg.apply() is True
    arun(dlg.applying)
    text = paths.settings_file.read_text()
    assert "# mine" in text and "UNKNOWN_THING=1" in text and "LLAMA_CTX_SIZE=1024" in text
    assert load_settings(paths).LLAMA_CTX_SIZE == 1024
    assert app.core.settings.LLAMA_CTX_SIZE == 1024
    assert "LLM on port" in dlg.message.text() and "old settings" in dlg.message.text()
    assert shown and shown[-1][0] == "Settings saved"
    # the running server was not restarted
    assert app.core.manager.status(port).state is ServerState.READY
    assert app.core.manager.status(port).spec.ctx_size == 512

    # a new model file for the LLM profile: the running one is no longer configured
    dlg.editors["LLM_MODEL_GGUF"].input.setText(str(tiny_model_b))
    assert dlg.apply() is True
    arun(dlg.applying)
    assert app.core.catalogue.role("llm").path == str(tiny_model_b)
    assert "no longer in the catalogue" in dlg.message.text()
    # the running server keeps its file; the role now names the new one
    assert app.core.manager.status(port).spec.model_path == str(tiny_model)


# ── The dialog on its own: every setting, by tab ────────────────────────────────

FILE_WITH_COMMENTS = """\
# My FamilyLog tray settings
SOME_FUTURE_KEY=keep me  # a key the app does not know

# models
LLAMA_CTX_SIZE=4096
"""

# Valid non-default text for the text settings whose validators want a form.
TEXT_SAMPLES = {
    "LLAMA_EXTRA_ARGS": "--alias 'my model' --flash-attn on",
    "FAMILYLOG_COMMAND": "uv run python run.py --now",
    "RUN_SCHEDULE": "03:00,14:30",
    "API_CORS_ORIGINS": "http://localhost:3000,https://app.example",
    "API_ALLOWED_HOSTS": "tray.local,box",
    "API_HOST": "192.168.1.5",
    "CONNECTION_TYPE": "online",
    "RPC_WORKER_HOST": "192.168.1.5",
    "RPC_WORKER_DEVICES": "Vulkan0,CUDA1",
    "RPC_WORKERS": "192.168.1.20:50052,[fd00::3]:50052",
    "PEERS": "laptop http://laptop.lan:1234 sk-laptop, desk http://desk.lan:1234",
}


def sample(field: form.FormField, current: object) -> str:
    """A valid value, as text, that differs from ``current``."""
    if field.kind is Kind.BOOL:
        return form.to_text(not current)
    if field.kind is Kind.INT:
        step = 1 if field.maximum is None or current + 1 <= field.maximum else -1
        return str(current + step)
    if field.kind is Kind.FLOAT:
        return form.to_text(current + 1.5)
    if field.kind is Kind.CHOICE:
        return next(c for c in field.choices if c != current)
    if field.kind is Kind.SECRET:
        return "s3cret key's"
    if field.browse is form.Browse.FOLDERS:
        return os.pathsep.join(["/models/My Models", "/srv/more models"])
    if field.kind is Kind.PATH:
        return f"/srv/My Files/{field.name.lower()}"
    return TEXT_SAMPLES.get(field.name, f"{current}-changed")


def enter(qtbot, editor: SettingEditor, text: str) -> None:
    """Put ``text`` into the editor the way a user does: click, pick or type."""
    w = editor.input
    if isinstance(w, QCheckBox):
        if editor.text() != text:
            qtbot.mouseClick(w, Qt.MouseButton.LeftButton)
    elif isinstance(w, QComboBox):
        w.setCurrentIndex(w.findText(text))
    elif isinstance(w, QSpinBox | QDoubleSpinBox):
        w.selectAll()
        typed = w.textFromValue(float(text)) if isinstance(w, QDoubleSpinBox) else text
        qtbot.keyClicks(w, typed)
    else:
        w.selectAll()
        if text:
            qtbot.keyClicks(w, text)
        else:
            qtbot.keyClick(w, Qt.Key.Key_Backspace)


@pytest.fixture
def dialog(qtbot, qloop):
    """``dialog()``: a settings dialog over the settings file; ``applied`` records calls
    (the app applies them on the event loop, ``qloop``)."""
    applied: list[Settings] = []

    async def on_applied(new: Settings) -> list[str]:
        applied.append(new)
        return ["LLM on port 8082 runs with the old settings."]

    def make() -> SettingsDialog:
        paths = AppPaths.resolve().ensure()
        dlg = SettingsDialog(load_settings(paths), paths, on_applied)
        qtbot.addWidget(dlg)
        dlg.show()
        qtbot.waitExposed(dlg)
        return dlg

    make.applied = applied  # type: ignore[attr-defined]
    return make


def click_apply(qtbot, dlg: SettingsDialog) -> None:
    """Apply, as a click, and wait until the app has applied what was saved."""
    before = dlg.applying
    qtbot.mouseClick(
        dlg.buttons.button(QDialogButtonBox.StandardButton.Apply), Qt.MouseButton.LeftButton
    )
    if dlg.applying is not before:
        qtbot.waitUntil(dlg.applying.done)


def test_every_setting_is_on_exactly_one_tab(dialog) -> None:
    dlg = dialog()
    assert [dlg.tabs.tabText(i) for i in range(dlg.tabs.count())] == list(GROUPS)
    seen: Counter[str] = Counter()
    for i in range(dlg.tabs.count()):
        for w in dlg.tab_page(i).findChildren(QWidget):
            if w.objectName() in Settings.model_fields:
                seen[w.objectName()] += 1
    assert set(seen) == set(Settings.model_fields)
    assert [n for n, count in seen.items() if count != 1] == []


def test_editors_by_type(dialog) -> None:
    dlg = dialog()
    expect = {
        Kind.BOOL: QCheckBox,
        Kind.INT: QSpinBox,
        Kind.FLOAT: QDoubleSpinBox,
        Kind.CHOICE: QComboBox,
        Kind.SECRET: QLineEdit,
        Kind.PATH: QLineEdit,
        Kind.TEXT: QLineEdit,
    }
    for name, editor in dlg.editors.items():
        f = editor.field
        assert isinstance(editor.input, expect[f.kind]), name
        assert (editor.browse is not None) == (f.kind is Kind.PATH), name
        assert editor.label.text() == f.title and f.description in editor.help.text(), name
        assert editor.input.toolTip() == f.tooltip, name
    assert dlg.editors["API_KEY"].input.echoMode() == QLineEdit.EchoMode.Password
    combo = dlg.editors["RUN_MODE"].input
    assert [combo.itemText(i) for i in range(combo.count())] == ["switch", "parallel", "auto"]


@pytest.mark.parametrize("tab", GROUPS)
def test_each_tab_round_trips_through_the_settings_file(qtbot, dialog, tab: str) -> None:
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text(FILE_WITH_COMMENTS)
    dlg = dialog()
    before = dlg.settings
    fields = [e.field for e in dlg.editors.values() if e.field.group == tab]
    assert fields
    dlg.tabs.setCurrentIndex(list(GROUPS).index(tab))
    wanted = {}
    for f in fields:
        wanted[f.name] = sample(f, getattr(before, f.name))
        enter(qtbot, dlg.editors[f.name], wanted[f.name])
        assert dlg.editors[f.name].text() == wanted[f.name], f.name
        assert dlg.editors[f.name].error is None, f.name
    assert dlg.changes() == wanted
    click_apply(qtbot, dlg)
    assert dlg.message.text().startswith("Saved."), dlg.message.text()
    assert "LLM on port 8082 runs with the old settings." in dlg.message.text()

    after = load_settings(paths)
    assert {n: form.to_text(getattr(after, n)) for n in wanted} == wanted
    others = [n for n in Settings.model_fields if n not in wanted]
    assert {n: getattr(after, n) for n in others} == {n: getattr(before, n) for n in others}
    assert dialog.applied == [after]
    assert dlg.changes() == {}  # the dialog shows what is now saved
    text = paths.settings_file.read_text()
    assert text.startswith("# My FamilyLog tray settings\n")
    assert "SOME_FUTURE_KEY=keep me  # a key the app does not know" in text
    assert "# models" in text
    assert dotenv_values(paths.settings_file)["SOME_FUTURE_KEY"] == "keep me"


def test_inline_validation_and_a_refused_save(qtbot, dialog) -> None:
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text(FILE_WITH_COMMENTS)
    dlg = dialog()
    port = dlg.editors["API_PORT"]
    enter(qtbot, port, "70000")
    message = "Input should be less than or equal to 65535."
    assert port.error == message
    assert message in port.help.text() and "b00020" in port.help.styleSheet()
    assert port.input.property("invalid") is True
    assert port.input.palette().color(QPalette.ColorRole.Base).name() == ERROR_BACKGROUND
    schedule = dlg.editors["RUN_SCHEDULE"]
    enter(qtbot, schedule, "25:00")
    assert "'25:00' is not a time of day" in schedule.error

    dlg.tabs.setCurrentIndex(0)
    click_apply(qtbot, dlg)
    assert "API_PORT = '70000': " + message in dlg.message.text()
    assert "RUN_SCHEDULE = '25:00'" in dlg.message.text()
    assert dlg.tabs.currentIndex() == dlg.tab_of("API_PORT")  # shows the first wrong field
    assert paths.settings_file.read_text() == FILE_WITH_COMMENTS  # nothing written
    assert dialog.applied == []

    enter(qtbot, port, "4321")
    enter(qtbot, schedule, "")
    assert port.error is None and schedule.error is None
    assert port.help.text() == port.field.description
    assert port.input.property("invalid") is False
    assert port.input.palette().color(QPalette.ColorRole.Base).name() != ERROR_BACKGROUND
    click_apply(qtbot, dlg)
    assert load_settings(paths).API_PORT == 4321


def test_spin_box_arrows_stop_at_the_limits(qtbot, dialog) -> None:
    dlg = dialog()
    port = dlg.editors["API_PORT"].input
    port.setValue(65535)
    assert not port.stepEnabled() & QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
    port.stepBy(10)
    assert port.value() == 65535
    body = dlg.editors["API_MAX_BODY_MB"].input
    body.setValue(1.0)
    body.stepBy(-5)
    assert body.value() == pytest.approx(0.01)  # more than 0
    assert dlg.editors["API_MAX_BODY_MB"].error is None


def test_a_setting_from_the_environment_is_read_only(qtbot, dialog, monkeypatch) -> None:
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text(FILE_WITH_COMMENTS)
    monkeypatch.setenv("API_PORT", "4321")
    monkeypatch.setenv("JIT_LOAD", "false")
    monkeypatch.setenv("LLM_MODEL_GGUF", "/env/model.gguf")
    dlg = dialog()
    port, jit, model = (dlg.editors[n] for n in ("API_PORT", "JIT_LOAD", "LLM_MODEL_GGUF"))
    assert port.input.isReadOnly() and port.text() == "4321"
    assert not jit.input.isEnabled() and jit.text() == "false"
    assert model.input.isReadOnly() and not model.browse.isEnabled()
    assert "environment variable API_PORT" in port.help.text()
    qtbot.keyClicks(port.input, "9")
    assert port.text() == "4321"
    assert not dlg.editors["API_HOST"].is_read_only()  # the others stay editable
    click_apply(qtbot, dlg)
    assert dlg.message.text() == "Nothing changed."
    assert paths.settings_file.read_text() == FILE_WITH_COMMENTS


def test_screenshot_of_each_tab(qtbot, dialog, monkeypatch) -> None:
    """One picture per tab in test-artifacts/, the dialog tall enough for the tab."""
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text(FILE_WITH_COMMENTS)
    monkeypatch.setenv("LOG_BACKUPS", "5")  # to see a read-only setting
    dlg = dialog()
    enter(qtbot, dlg.editors["API_PORT"], "70000")  # one error, to see how it looks
    ARTIFACTS.mkdir(exist_ok=True)
    extra = dlg.height() - dlg.tabs.widget(0).viewport().height()  # all but the form
    for i in range(dlg.tabs.count()):
        dlg.tabs.setCurrentIndex(i)
        scroll = dlg.tabs.widget(i)
        page = dlg.tab_page(i)
        dlg.resize(dlg.width(), page.heightForWidth(scroll.viewport().width()) + extra)
        qtbot.waitUntil(lambda s=scroll: not s.verticalScrollBar().isVisible())
        slug = re.sub(r"[^a-z]+", "-", dlg.tabs.tabText(i).lower()).strip("-")
        out = ARTIFACTS / f"settings-{slug}.png"
        assert dlg.grab().save(str(out))
        assert out.stat().st_size > 0
