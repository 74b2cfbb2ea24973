"""first_run_reasons and the settings writer (Qt-free)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.settings.first_run import (
    FirstRunChoice,
    first_run_reasons,
    settings_origin,
    write_first_run_settings,
)
from app.core.settings.settings_file import quote
from app.core.settings.settings_file import update_settings_file as update_dotenv
from app.paths import AppPaths
from app.settings_load import load_settings


@pytest.fixture
def paths() -> AppPaths:
    return AppPaths.resolve().ensure()


def test_no_settings_and_no_models_need_first_run(paths: AppPaths) -> None:
    reasons = first_run_reasons(load_settings(paths), paths)
    assert any("Neither the vision model nor the LLM model" in r for r in reasons)


def test_environment_and_familylog_env_alone_need_no_first_run(
    paths, llama_server_bin, tiny_model, tmp_path, monkeypatch
) -> None:
    fl = tmp_path / "FamilyLog"
    fl.mkdir()
    (fl / ".env").write_text(f"LLM_MODEL_GGUF={tiny_model}\n")
    monkeypatch.setenv("LLAMA_SERVER_PATH", llama_server_bin)
    monkeypatch.setenv("FAMILYLOG_DIR", str(fl))
    s = load_settings(paths)
    assert not paths.settings_file.exists()
    assert first_run_reasons(s, paths) == []
    text = settings_origin(s, paths)
    assert f"llama-server ({llama_server_bin}) from the environment" in text, text
    assert f"the LLM model from FamilyLog's .env ({fl / '.env'})" in text, text
    assert "the vision model" not in text and str(paths.settings_file) in text


def test_complete_settings_need_no_first_run(paths, llama_server_bin, tiny_model) -> None:
    paths.settings_file.write_text(
        f"LLAMA_SERVER_PATH={llama_server_bin}\nLLM_MODEL_GGUF={tiny_model}\n"
    )
    assert first_run_reasons(load_settings(paths), paths) == []


def test_unusable_paths_need_first_run(paths, llama_server_bin, tmp_path) -> None:
    paths.settings_file.write_text(
        f"LLAMA_SERVER_PATH={tmp_path / 'gone'}\nLLM_MODEL_GGUF={tmp_path / 'gone.gguf'}\n"
    )
    reasons = first_run_reasons(load_settings(paths), paths)
    assert len(reasons) == 2
    assert str(tmp_path / "gone") in reasons[0] and "Neither" in reasons[1]
    paths.settings_file.write_text(
        f"LLAMA_SERVER_PATH={llama_server_bin}\nVISION_MODEL_GGUF={tmp_path / 'gone.gguf'}\n"
    )
    assert first_run_reasons(load_settings(paths), paths)


def test_write_first_run_settings_keeps_comments_and_other_keys(
    paths, llama_server_bin, tiny_model, tiny_model_b
) -> None:
    original = (
        "# my notes\nAPI_PORT=1300\nexport LLM_MODEL_GGUF=/old.gguf\n\n# end\nLLM_MODEL_GGUF=/dup\n"
    )
    paths.settings_file.write_text(original)
    choice = FirstRunChoice(
        server_path=llama_server_bin,
        vision_model=str(tiny_model),
        vision_mmproj=str(tiny_model_b),
        llm_model=str(tiny_model_b),
        familylog_dir="/home/me/Family Log",
        imported={"LLAMA_CTX_SIZE": "4096"},
    )
    write_first_run_settings(paths, choice)
    text = paths.settings_file.read_text()
    assert text.startswith("# my notes\nAPI_PORT=1300\n")
    assert "# end" in text and "/old.gguf" not in text
    # a later duplicate would win over the new value: it stays, commented out
    assert "# LLM_MODEL_GGUF=/dup  (replaced by the line above)" in text.splitlines()
    s = load_settings(paths)
    assert (
        llama_server_bin,
        str(tiny_model),
        str(tiny_model_b),
        str(tiny_model_b),
    ) == (s.LLAMA_SERVER_PATH, s.VISION_MODEL_GGUF, s.VISION_MMPROJ, s.LLM_MODEL_GGUF)
    assert s.API_PORT == 1300 and s.LLAMA_CTX_SIZE == 4096
    assert s.FAMILYLOG_DIR == "/home/me/Family Log"
    assert first_run_reasons(s, paths) == []


def test_new_settings_file_gets_a_header(paths, llama_server_bin, tiny_model) -> None:
    write_first_run_settings(
        paths, FirstRunChoice(server_path=llama_server_bin, llm_model=str(tiny_model))
    )
    text = paths.settings_file.read_text()
    assert text.startswith("# FamilyLog Tray settings")
    assert dotenv_values(paths.settings_file)["LLM_MODEL_GGUF"] == str(tiny_model)


def test_incomplete_choice_is_refused_with_reasons(paths, tmp_path) -> None:
    with pytest.raises(ValueError, match="Choose a llama-server binary.*at least one model"):
        write_first_run_settings(paths, FirstRunChoice())
    assert not paths.settings_file.exists()


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=40,
    ).filter(lambda v: "${" not in v)
)
def test_dotenv_values_round_trip(value: str, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("env") / "s.env"
    path.write_text("# keep\nOTHER=1\n")
    update_dotenv(path, {"KEY": value})
    update_dotenv(path, {"SECOND": "x"})
    read = dotenv_values(path)
    assert read["KEY"] == value, quote(value)
    assert read["OTHER"] == "1" and read["SECOND"] == "x"


def test_windows_path_and_spaces_survive(tmp_path: Path) -> None:
    path = tmp_path / "s.env"
    values = {"A": r"C:\Users\Me\models\x.gguf", "B": "/a b/c's.gguf", "C": "x#y"}
    update_dotenv(path, values)
    assert dotenv_values(path) == values
    assert os.stat(path).st_size > 0
