from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.paths import AppPaths
from app.settings_load import SettingsError, load_settings, settings_warnings


def test_defaults_match_the_seed(app_home: Path) -> None:
    s = load_settings(AppPaths.resolve())
    assert s.LLAMA_SERVER_PATH == "/usr/local/bin/llama-server"
    assert (s.LLAMA_GPU_LAYERS, s.LLAMA_CTX_SIZE) == (-1, 8192)
    assert (s.LLAMA_VISION_PORT, s.LLAMA_LLM_PORT, s.LLAMA_PORT) == (8081, 8082, 8080)
    assert s.VISION_MODEL_GGUF == s.VISION_MMPROJ == s.LLM_MODEL_GGUF == ""
    assert (s.CONNECTION_TYPE, s.OPENROUTER_URL) == ("offline", "https://openrouter.ai/api/v1")


def test_app_home_comes_from_the_env(app_home: Path) -> None:
    paths = AppPaths.resolve().ensure()
    assert paths.config_dir == app_home.resolve()
    assert paths.log_dir.is_dir() and paths.log_dir.parent == app_home.resolve()
    assert paths.server_log(8081).name == "llama-server-8081.log"


def test_sources_later_wins(tmp_path: Path, app_home: Path, monkeypatch) -> None:
    fl = tmp_path / "familylog"
    fl.mkdir()
    (fl / ".env").write_text(
        "TELEGRAM_TOKEN=ignored\nLLAMA_CTX_SIZE=4096\nLLAMA_LLM_PORT=9002\nLLAMA_VISION_PORT=9001\n"
        "LLM_MODEL_GGUF=/m/from-familylog.gguf\n"
    )
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text(f"# mine\nFAMILYLOG_DIR={fl}\nLLAMA_LLM_PORT=9102\n")
    monkeypatch.setenv("LLAMA_VISION_PORT", "9201")
    s = load_settings(paths)
    assert s.LLAMA_CTX_SIZE == 4096  # only FamilyLog's .env sets it
    assert s.LLM_MODEL_GGUF == "/m/from-familylog.gguf"
    assert s.LLAMA_LLM_PORT == 9102  # the app's file beats FamilyLog's
    assert s.LLAMA_VISION_PORT == 9201  # the environment beats both


def test_extra_args_are_split_like_a_shell() -> None:
    s = Settings(LLAMA_EXTRA_ARGS="--flash-attn on --alias 'my model'")
    assert s.extra_args == ["--flash-attn", "on", "--alias", "my model"]


@pytest.mark.parametrize(
    ("name", "value", "expect"),
    [
        ("LLAMA_CTX_SIZE", "lots", "integer"),
        ("LLAMA_LLM_PORT", "70000", "less than or equal to 65535"),
        ("RUN_MODE", "sometimes", "'switch', 'parallel' or 'auto'"),
        ("LLAMA_EXTRA_ARGS", "--alias 'unclosed", "quotes"),
        ("RUN_SCHEDULE", "3am", "HH:MM"),
    ],
)
def test_bad_value_gets_one_readable_message(app_home, name, value, expect) -> None:
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text(f"{name}={value}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(paths)
    msg = str(info.value)
    assert name in msg and value in msg and expect in msg
    assert str(paths.settings_file) in msg
    assert "Traceback" not in msg


def test_bad_value_from_the_environment_says_so(app_home, monkeypatch) -> None:
    monkeypatch.setenv("LLAMA_GPU_LAYERS", "-5")
    with pytest.raises(SettingsError, match="LLAMA_GPU_LAYERS=.*-5.*in the environment"):
        load_settings(AppPaths.resolve())


def test_schedule_times_are_parsed() -> None:
    assert Settings(RUN_SCHEDULE="14:30, 03:00").schedule_times == [(3, 0), (14, 30)]


def test_familylogs_env_is_read_for_the_seeds_keys_only(tmp_path, app_home, monkeypatch) -> None:
    """FamilyLog's .env holds FamilyLog's own settings too: a RUN_MODE of its own (not a mode
    the app knows), an API_PORT of its own; they are not the app's and never stop it."""
    fl = tmp_path / "familylog"
    fl.mkdir()
    (fl / ".env").write_text(
        'RUN_MODE=bogus\nAPI_PORT=1\nLLAMA_EXTRA_ARGS="--alias \'unclosed"\nLLAMA_CTX_SIZE=4096\n'
        "LLM_MODEL_GGUF=/m/llm.gguf\nCONNECTION_TYPE=online\nOPENROUTER_URL=https://example.org/v1\n"
    )
    monkeypatch.setenv("FAMILYLOG_DIR", str(fl))
    s = load_settings(AppPaths.resolve().ensure())
    assert (s.RUN_MODE, s.API_PORT, s.LLAMA_EXTRA_ARGS) == ("auto", 1234, "")
    assert (s.LLAMA_CTX_SIZE, s.LLM_MODEL_GGUF) == (4096, "/m/llm.gguf")
    assert (s.CONNECTION_TYPE, s.OPENROUTER_URL) == ("online", "https://example.org/v1")
    # a bad value of a seed's key there is still refused, naming FamilyLog's file
    (fl / ".env").write_text("LLAMA_CTX_SIZE=huge\n")
    with pytest.raises(SettingsError, match=f"LLAMA_CTX_SIZE=.*huge.*in {fl / '.env'}"):
        load_settings(AppPaths.resolve())


def test_a_key_set_twice_in_the_settings_file_is_a_warning_naming_both_lines(app_home) -> None:
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text(
        "# mine\nLLAMA_CTX_SIZE=4096\nAPI_KEY=secret-one\nLLAMA_CTX_SIZE=1024\nAPI_KEY=secret-two\n"
    )
    assert load_settings(paths).LLAMA_CTX_SIZE == 1024  # the last one, as before
    ctx, key = settings_warnings(paths)
    assert "LLAMA_CTX_SIZE is set on lines 2 and 4; line 4 wins" in ctx
    assert str(paths.settings_file) in ctx
    assert "API_KEY is set on lines 3 and 5" in key and "secret" not in key  # no value shown
    paths.settings_file.write_text("LLAMA_CTX_SIZE=4096\n")
    assert settings_warnings(paths) == []
