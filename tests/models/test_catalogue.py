"""The catalogue (app/core/models/catalogue.py) on real GGUF files: the roles follow the
settings in force, a model is found by key or alias (exact, then ignoring case), an unknown
name lists the known keys, and listeners hear every rebuild."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.config import Settings
from app.core.models.catalogue import Catalogue, UnknownModelError
from app.core.models.entry import LLM, VISION


def settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_roles_follow_the_settings_in_force(tiny_model: Path, tiny_model_b: Path) -> None:
    current = settings(LLM_MODEL_GGUF=str(tiny_model), LLM_MODEL_ID="google/gemma-3-12b")
    catalogue = Catalogue(lambda: current)
    heard: list[int] = []
    catalogue.subscribe(lambda: heard.append(len(catalogue.entries())))
    assert not catalogue.role(VISION).configured  # no file: a role, but no entry
    assert [e.key for e in catalogue.entries()] == ["google/gemma-3-12b"]
    llm = catalogue.resolve("google/gemma-3-12b")
    assert llm.role == LLM and llm.path == str(tiny_model) and llm.info is not None

    current = settings(LLM_MODEL_GGUF=str(tiny_model_b))
    assert catalogue.role(LLM).path == str(tiny_model)  # not before the rebuild
    catalogue.refresh()
    assert heard == [1]
    assert catalogue.role(LLM).path == str(tiny_model_b)
    assert catalogue.known_keys() == [tiny_model_b.stem]  # no ID: the file's name


def test_a_model_is_found_by_key_or_alias_then_ignoring_case(
    tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models" / "lmstudio-community" / "Tiny-GGUF"
    folder.mkdir(parents=True)
    shutil.copy(tiny_model, folder / "Tiny-Q8_0.gguf")
    current = settings(MODEL_DIRS=str(tmp_path / "models"))
    catalogue = Catalogue(lambda: current)
    assert catalogue.entries() == []  # folders are read by a scan, not at construction
    assert catalogue.scan() == []
    catalogue.refresh()
    (entry,) = catalogue.entries()
    assert entry.key == "lmstudio-community/tiny"
    assert catalogue.find(entry.key) is entry
    assert catalogue.find("Tiny-Q8_0.gguf") is entry  # the file's name is an alias
    assert catalogue.find("LMSTUDIO-COMMUNITY/TINY") is entry
    assert catalogue.find("") is None and catalogue.find(None) is None
    assert catalogue.by_file(os.fspath(folder / "Tiny-Q8_0.gguf")) is entry

    with pytest.raises(UnknownModelError) as e:
        catalogue.resolve("no-such-model")
    assert e.value.known == ["lmstudio-community/tiny"]
    assert "Known models: lmstudio-community/tiny" in str(e.value)
