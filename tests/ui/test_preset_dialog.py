"""Settings… of one model: the form is generated from the preset model, saves the model's
section of models.ini, and refuses a draft model with another vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QComboBox, QDialogButtonBox, QSpinBox

from app.config import Settings
from app.core.models.catalogue import Catalogue
from app.core.presets.field_meta import PRESET_GROUPS
from app.core.presets.fields import ModelPreset
from app.core.presets.keys import key_of
from app.core.presets.service import Presets
from app.core.presets.store import PresetStore
from app.paths import AppPaths
from app.ui.preset_dialog import PresetDialog
from tests.support.tiny_model import write_tiny_model

SECTION_BEFORE = """\
; mine
[other/thing]
hf-repo = someone/else

[family/llm]
parallel = 3 ; keep
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("dialog-models")
    write_tiny_model(d / "big-Q8_0.gguf")
    write_tiny_model(d / "small-Q8_0.gguf", seed=1, name="small")
    write_tiny_model(d / "other-vocab-Q8_0.gguf", seed=2, name="other", fim=True)
    return d


@pytest.fixture
def presets(folder: Path, app_home: Path) -> Presets:
    s = Settings(
        _env_file=None,  # type: ignore[call-arg]
        MODEL_DIRS=str(folder),
        LLM_MODEL_GGUF=str(folder / "big-Q8_0.gguf"),
        LLM_MODEL_ID="family/llm",
        LLAMA_CTX_SIZE=8192,
    )
    catalogue = Catalogue(lambda: s)
    catalogue.scan()
    catalogue.refresh()
    store = PresetStore(AppPaths.resolve().presets_file)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(SECTION_BEFORE)
    return Presets(store, catalogue, lambda: s)


@pytest.fixture
def dialog(qtbot, presets: Presets):
    model = presets._catalogue.find("family/llm")
    saved: list[int] = []
    dlg = PresetDialog(presets, model, "LLM", on_saved=lambda: saved.append(1) or [])
    dlg.saved = saved
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    return dlg


def tick(qtbot, dlg: PresetDialog, key: str) -> None:
    dlg.tabs.setCurrentIndex(dlg.tab_of(key))
    box = dlg.own[key]  # on its indicator: the box may be wider than its text
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(6, box.height() // 2))


def apply(qtbot, dlg: PresetDialog) -> None:
    qtbot.mouseClick(
        dlg.buttons.button(QDialogButtonBox.StandardButton.Apply), Qt.MouseButton.LeftButton
    )


def test_the_form_is_the_preset_model(dialog: PresetDialog) -> None:
    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())] == list(PRESET_GROUPS)
    assert list(dialog.editors) == [key_of(n) for n in ModelPreset.model_fields]
    for name, info in ModelPreset.model_fields.items():
        own = dialog.own[key_of(name)]
        assert own.text() == info.title
        assert key_of(name) in own.toolTip() and info.description in own.toolTip()
    assert isinstance(dialog.editors["ctx-size"].input, QSpinBox)
    assert isinstance(dialog.editors["cache-type-k"].input, QComboBox)


def test_own_values_are_ticked_and_defaults_shown(dialog: PresetDialog) -> None:
    assert dialog.own["parallel"].isChecked() and dialog.editors["parallel"].text() == "3"
    ctx = dialog.editors["ctx-size"]
    assert not dialog.own["ctx-size"].isChecked()
    assert ctx.is_read_only() and ctx.text() == "8192"
    assert "Not set: 8192 (Settings: LLAMA_CTX_SIZE)." in ctx.help.text()
    assert "[family/llm]" in dialog.intro.text()
    # a default that is a value is shown as one; one that is not ("automatic"), in words
    assert dialog.editors["flash-attn"].text() == "auto"
    threads = dialog.editors["threads"]
    assert threads.showing_placeholder() and threads.input.text() == "automatic"


def test_ticking_a_setting_without_a_value_starts_from_the_lowest(qtbot, dialog) -> None:
    tick(qtbot, dialog, "threads")
    assert dialog.editors["threads"].text() == "-1" and not dialog.editors["threads"].is_read_only()
    assert dialog.values()["threads"] == "-1"
    tick(qtbot, dialog, "threads")  # and back
    assert dialog.editors["threads"].showing_placeholder() and "threads" not in dialog.values()


def test_save_writes_the_models_section_and_keeps_the_rest(qtbot, dialog, presets) -> None:
    tick(qtbot, dialog, "ctx-size")
    spin = dialog.editors["ctx-size"].input
    spin.selectAll()
    qtbot.keyClicks(spin, "4096")
    tick(qtbot, dialog, "pinned")
    qtbot.mouseClick(dialog.editors["pinned"].input, Qt.MouseButton.LeftButton)
    apply(qtbot, dialog)
    assert presets.store.path.read_text() == SECTION_BEFORE.replace(
        "parallel = 3 ; keep\n", "parallel = 3 ; keep\nctx-size = 4096\npinned = true\n"
    )
    msg = dialog.message.text()
    assert msg.startswith("Saved.")
    assert "Context size: from the next load of the model." in msg and "Pinned: at once." in msg
    assert dialog.saved == [1]
    # untick everything: the section goes, the rest stays
    for key in ("ctx-size", "pinned", "parallel"):
        tick(qtbot, dialog, key)
    apply(qtbot, dialog)
    assert presets.store.path.read_text() == "; mine\n[other/thing]\nhf-repo = someone/else\n"


def test_a_draft_with_another_vocabulary_is_refused(qtbot, dialog, presets) -> None:
    draft = dialog.editors["model-draft"]
    combo = draft.input
    assert isinstance(combo, QComboBox) and combo.isEditable()
    offered = {combo.itemText(i) for i in range(combo.count())}
    assert offered == {"small-Q8_0", "other-vocab-Q8_0"}
    tick(qtbot, dialog, "model-draft")
    combo.setCurrentIndex(combo.findText("other-vocab-Q8_0"))
    assert draft.error and "token 98 differs" in draft.error
    before = presets.store.path.read_text()
    apply(qtbot, dialog)
    assert "model-draft" in dialog.message.text() and presets.store.path.read_text() == before
    combo.setCurrentIndex(combo.findText("small-Q8_0"))
    assert draft.error is None
    apply(qtbot, dialog)
    assert "model-draft = small-Q8_0" in presets.store.path.read_text()


def test_a_value_out_of_range_is_shown_and_not_saved(qtbot, dialog, presets) -> None:
    tick(qtbot, dialog, "top-p")
    box = dialog.editors["top-p"].input
    box.selectAll()
    qtbot.keyClicks(box, "3")
    assert dialog.editors["top-p"].error == "Input should be less than or equal to 1."
    apply(qtbot, dialog)
    assert "top-p" not in presets.store.path.read_text()
