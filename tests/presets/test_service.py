"""What a load uses, the draft model resolved and checked, and the per-model form's data,
with the real catalogue over generated GGUFs."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.core.models.catalogue import Catalogue
from app.core.presets.fields import ModelPreset
from app.core.presets.service import DraftRefusedError, Presets
from app.core.presets.store import PresetError, PresetStore
from app.paths import AppPaths
from tests.support.tiny_model import write_tiny_bert, write_tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("presets-models")
    write_tiny_model(d / "big-Q8_0.gguf")
    write_tiny_model(d / "small-Q8_0.gguf", seed=1, name="small")
    write_tiny_model(d / "other-vocab-Q8_0.gguf", seed=2, name="other", fim=True)
    write_tiny_bert(d / "embed-F32.gguf")
    return d


@pytest.fixture
def settings(folder: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        MODEL_DIRS=str(folder),
        LLM_MODEL_GGUF=str(folder / "big-Q8_0.gguf"),
        LLM_MODEL_ID="family/llm",
        LLM_LOAD_AT_START=True,
        LLAMA_CTX_SIZE=8192,
        IDLE_UNLOAD_MINUTES=5,
    )


@pytest.fixture
def presets(settings: Settings, app_home: Path) -> Presets:
    catalogue = Catalogue(lambda: settings)
    catalogue.scan()
    catalogue.refresh()
    return Presets(PresetStore(AppPaths.resolve().presets_file), catalogue, lambda: settings)


def entry(presets: Presets, name: str):
    found = presets._catalogue.find(name)
    assert found is not None, name
    return found


def write(presets: Presets, text: str) -> None:
    presets.store.path.parent.mkdir(parents=True, exist_ok=True)
    presets.store.path.write_text(text, encoding="utf-8")


def test_a_load_uses_the_global_section_the_models_own_then_the_request(presets: Presets) -> None:
    write(
        presets,
        "[*]\nparallel = 2\nflash-attn = off\n\n[family/llm]\nctx-size = 4096\nflash-attn = on\n",
    )
    llm = entry(presets, "family/llm")
    got = presets.for_load(llm)
    assert got.set_fields() == {"parallel": 2, "flash_attn": "on", "ctx_size": 4096}
    got = presets.for_load(llm, ModelPreset(ctx_size=1024))
    assert (got.ctx_size, got.flash_attn, got.parallel) == (1024, "on", 2)


def test_the_draft_model_by_key_becomes_its_file(presets: Presets, folder: Path) -> None:
    write(presets, "[family/llm]\nmodel-draft = small-Q8_0\ndraft-max = 4\n")
    got = presets.for_load(entry(presets, "family/llm"))
    assert got.model_draft == str(folder / "small-Q8_0.gguf")
    assert got.draft_max == 4


def test_a_draft_by_a_relative_path_is_found_beside_the_file(
    presets: Presets, folder: Path
) -> None:
    link = presets.store.path.parent / "drafts"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(folder)
    write(presets, "[family/llm]\nmodel-draft = drafts/small-Q8_0.gguf\n")
    assert presets.for_load(entry(presets, "family/llm")).model_draft == str(
        link / "small-Q8_0.gguf"
    )


def test_a_draft_with_another_vocabulary_is_refused_before_anything_starts(
    presets: Presets,
) -> None:
    write(presets, "[family/llm]\nmodel-draft = other-vocab-Q8_0\n")
    with pytest.raises(DraftRefusedError) as e:
        presets.for_load(entry(presets, "family/llm"))
    assert str(e.value).startswith(
        "Cannot use the draft model for family/llm: other-vocab-Q8_0.gguf cannot draft for "
        "big-Q8_0.gguf: token 98 differs"
    )


def test_a_section_that_cannot_be_read_refuses_the_load(presets: Presets) -> None:
    write(presets, "[family/llm]\nctx = 1\n")
    with pytest.raises(PresetError, match="line 2: unknown option 'ctx'"):
        presets.for_load(entry(presets, "family/llm"))
    assert not presets.pinned(entry(presets, "family/llm"))


def test_the_form_shows_own_values_defaults_and_draft_choices(presets: Presets) -> None:
    write(presets, "[*]\nparallel = 2\n\n[family/llm]\nctx-size = 4096\npinned = true\n")
    form = presets.form(entry(presets, "family/llm"))
    assert form.values == {"ctx-size": "4096", "pinned": "true"}
    assert form.section == "family/llm" and form.path == presets.store.path
    assert (
        form.defaults["ctx-size"] == "8192"
        and form.notes["ctx-size"] == "8192 (Settings: LLAMA_CTX_SIZE)"
    )
    assert form.defaults["parallel"] == "2" and form.notes["parallel"] == "2 (the [*] section)"
    assert form.defaults["ttl"] == "300"
    assert form.defaults["load-on-startup"] == "true"  # the role's LLM_LOAD_AT_START
    assert form.notes["flash-attn"] == "auto"
    # llama-server's default, where it is a value of its own
    assert form.defaults["flash-attn"] == "auto" and form.defaults["cache-type-k"] == "f16"
    assert form.defaults["mmap"] == "true" and "threads" not in form.defaults
    # drafts: the other LLMs, not the model itself nor an embedding model
    assert set(form.drafts) == {"small-Q8_0", "other-vocab-Q8_0"}
    assert form.problem is None


def test_the_form_says_why_a_section_cannot_be_used(presets: Presets) -> None:
    write(presets, "[family/llm]\nctx-size = many\n")
    form = presets.form(entry(presets, "family/llm"))
    assert form.problem and "line 2: ctx-size = 'many'" in form.problem


def test_check_and_save(presets: Presets) -> None:
    llm = entry(presets, "family/llm")
    errors = presets.check(llm, {"ctx-size": "-1", "model-draft": "other-vocab-Q8_0"})
    assert set(errors) == {"ctx-size", "model-draft"}
    assert errors["ctx-size"] == "Input should be greater than or equal to 0."
    assert "token 98 differs" in errors["model-draft"]
    assert presets.check(llm, {"ctx-size": "0", "model-draft": "small-Q8_0"}) == {}
    with pytest.raises(ValueError, match="ctx-size"):
        presets.save(llm, {"ctx-size": "-1"})
    assert not presets.store.path.exists()
    presets.save(llm, {"ctx-size": "2048", "model-draft": "small-Q8_0", "pinned": "true"})
    assert presets.store.path.read_text().endswith(
        "[family/llm]\nctx-size = 2048\nmodel-draft = small-Q8_0\npinned = true\n"
    )
    assert presets.has_own(llm) and presets.pinned(llm)


def test_what_loads_at_start(presets: Presets) -> None:
    assert [e.key for e in presets.to_load_at_start()] == ["family/llm"]
    write(presets, "[family/llm]\nload-on-startup = false\n\n[small-Q8_0]\nload-on-start = true\n")
    assert [e.key for e in presets.to_load_at_start()] == ["small-Q8_0"]


def test_ttl_from_the_preset(presets: Presets) -> None:
    write(presets, "[*]\nttl = 600\n\n[small-Q8_0]\nttl = 0\n")
    assert presets.ttl(entry(presets, "family/llm")) == 600
    assert presets.ttl(entry(presets, "small-Q8_0")) == 0
