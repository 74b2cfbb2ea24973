"""The settings file helper and the settings dialog."""

from __future__ import annotations

import stat

from dotenv import dotenv_values

from app.config import load_settings
from app.core.servers.states import ServerState
from app.core.settings.settings_file import quote, update_settings_file, validate_changes
from app.paths import AppPaths

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
    dlg.editors["LLAMA_CTX_SIZE"].setValue(1024)
    dlg.editors["LLAMA_EXTRA_ARGS"].setText("--alias 'broken")
    assert dlg.apply() is False
    assert "LLAMA_EXTRA_ARGS" in dlg.message.text()
    assert "LLAMA_CTX_SIZE=1024" not in paths.settings_file.read_text()  # nothing written

    dlg.editors["LLAMA_EXTRA_ARGS"].setText("")
    shown = []
    app.notifier.shown.connect(lambda t, x: shown.append((t, x)))
    assert dlg.apply() is True
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
    dlg.editors["LLM_MODEL_GGUF"].setText(str(tiny_model_b))
    assert dlg.apply() is True
    assert app.core.catalogue.role("llm").path == str(tiny_model_b)
    assert "no longer in the catalogue" in dlg.message.text()
    # the running server keeps its file; the role now names the new one
    assert app.core.manager.status(port).spec.model_path == str(tiny_model)
