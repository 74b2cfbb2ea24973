"""Settings… as data (app/core/settings/form.py): editors, tabs, text and validation."""

from __future__ import annotations

import os

import pytest
from pydantic import Field, SecretStr

from app.config import GROUPS, Applies, Settings
from app.core.settings import form
from app.core.settings.form import Browse, Kind


def by_name() -> dict[str, form.FormField]:
    return {f.name: f for f in form.form_fields()}


def test_every_field_has_a_title_a_description_and_a_known_tab() -> None:
    fields = form.form_fields()
    assert [f.name for f in fields] == list(Settings.model_fields)
    for f in fields:
        assert f.group in GROUPS, f.name
        assert f.title != f.name and f.description, f.name
    placed = [f.name for _tab, fs in form.tabs(fields) for f in fs]
    assert sorted(placed) == sorted(Settings.model_fields)  # each once
    assert [t for t, _ in form.tabs(fields)] == list(GROUPS)


def test_tabs_named_in_the_issue() -> None:
    tab = {f.name: f.group for f in form.form_fields()}
    for name in (
        "RUN_MODE",
        "MAX_LOADED_MODELS",
        "EVICT_WAIT_SECONDS",
        "IDLE_UNLOAD_MINUTES",
        "JIT_LOAD",
        "MODEL_DIRS",
    ):
        assert tab[name] == "Placement", name
    for name in ("API_PORT", "API_HOST", "API_KEY", "API_ALLOW_REMOTE", "API_CORS_ORIGINS"):
        assert tab[name] == "API", name
    for name in ("FAMILYLOG_DIR", "RUN_SCHEDULE", "AFTER_RUN", "FAMILYLOG_MANAGES_MODELS"):
        assert tab[name] == "FamilyLog runs", name
    assert tab["LOG_BACKUPS"] == "Logs" and tab["LLM_MODEL_GGUF"] == "Models and server"


def test_editor_kinds_come_from_types_and_names() -> None:
    f = by_name()
    assert f["JIT_LOAD"].kind is Kind.BOOL
    assert f["API_PORT"].kind is Kind.INT
    assert f["EVICT_WAIT_SECONDS"].kind is Kind.FLOAT
    assert f["RUN_MODE"].kind is Kind.CHOICE
    assert f["RUN_MODE"].choices == ("switch", "parallel", "auto")
    assert f["API_KEY"].kind is Kind.SECRET
    assert f["RUN_SCHEDULE"].kind is Kind.TEXT
    paths = {n: (x.browse, x.file_filter) for n, x in f.items() if x.kind is Kind.PATH}
    assert paths == {
        "LLAMA_SERVER_PATH": (Browse.FILE, form.ANY_FILTER),
        "VISION_MODEL_GGUF": (Browse.FILE, form.GGUF_FILTER),
        "VISION_MMPROJ": (Browse.FILE, form.GGUF_FILTER),
        "LLM_MODEL_GGUF": (Browse.FILE, form.GGUF_FILTER),
        "FAMILYLOG_DIR": (Browse.FOLDER, ""),
        "MODEL_DIRS": (Browse.FOLDERS, ""),
    }


def test_limits_come_from_the_field() -> None:
    f = by_name()
    port = f["API_PORT"]
    assert (port.minimum, port.maximum, port.limits_text) == (0, 65535, "0 to 65535")
    assert port.step_limits == (0, 65535)
    body = f["API_MAX_BODY_MB"]
    assert body.exclusive_minimum and body.limits_text == "more than 0"
    assert body.step_limits == (0.01, form.FLOAT_RANGE[1])
    assert f["LLAMA_GPU_LAYERS"].step_limits == (-1, form.INT_RANGE[1])
    assert f["LLAMA_GPU_LAYERS"].limits_text == "at least -1"
    assert f["LLAMA_EXTRA_ARGS"].limits_text == ""
    assert "Allowed: 0 to 65535." in port.tooltip and "API_PORT" in port.tooltip


def test_every_field_says_how_a_change_applies() -> None:
    f = by_name()
    assert all(field.applies is not None for field in f.values())
    assert f["API_PORT"].applies is Applies.RESTART
    assert f["API_PORT"].tooltip.endswith("A change applies after restart.")
    assert f["LLAMA_CTX_SIZE"].applies is Applies.NEXT_LOAD
    assert f["RUN_SCHEDULE"].applies is Applies.NOW
    with pytest.raises(ValueError):
        Applies("whenever")


def test_a_new_setting_needs_no_ui_code() -> None:
    class More(Settings):
        SHINY_LEVEL: int = Field(
            default=3, lt=10, title="Shininess", description="How shiny", json_schema_extra={}
        )
        CACHE_DIRS: str = ""

    f = {x.name: x for x in form.form_fields(More)}
    shiny = f["SHINY_LEVEL"]
    assert (shiny.kind, shiny.title, shiny.group, shiny.limits_text) == (
        Kind.INT,
        "Shininess",
        form.OTHER,
        "less than 10",
    )
    assert shiny.step_limits == (form.INT_RANGE[0], 9)
    assert f["CACHE_DIRS"].browse is Browse.FOLDERS and f["CACHE_DIRS"].title == "CACHE_DIRS"
    assert [t for t, _ in form.tabs(list(f.values()))] == [*GROUPS, form.OTHER]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (120.0, "120"),
        (0.25, "0.25"),
        (8192, "8192"),
        (SecretStr("s3 cret"), "s3 cret"),
        ("auto", "auto"),
    ],
)
def test_values_as_file_text(value: object, text: str) -> None:
    assert form.to_text(value) == text


def test_every_default_reads_back_from_its_text() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    texts = {name: form.to_text(getattr(s, name)) for name in Settings.model_fields}
    assert Settings(_env_file=None, **texts) == s  # type: ignore[call-arg, arg-type]


def test_field_error_is_pydantics_message() -> None:
    assert form.field_error("API_PORT", "1234") is None
    assert form.field_error("API_PORT", "70000") == "Input should be less than or equal to 65535."
    assert "greater than 0" in form.field_error("API_MAX_BODY_MB", "0")
    assert "'switch', 'parallel' or 'auto'" in form.field_error("RUN_MODE", "sometimes")
    assert "HH:MM" in form.field_error("RUN_SCHEDULE", "25:00")
    assert "quotes" in form.field_error("FAMILYLOG_COMMAND", "run 'x")


def test_field_error_ignores_other_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("LLAMA_CTX_SIZE", "lots")
    assert form.field_error("API_PORT", "1234") is None
    assert form.field_error("API_PORT", "-1") is not None


def test_environment_note(monkeypatch) -> None:
    assert form.environment_note("API_PORT") is None
    monkeypatch.setenv("API_PORT", "4321")
    note = form.environment_note("API_PORT")
    assert note is not None and "environment variable API_PORT" in note


def test_add_folder_appends_once() -> None:
    sep = os.pathsep
    assert form.add_folder("", "/m/a") == "/m/a"
    assert form.add_folder(f"/m/a{sep}", "/m/b") == f"/m/a{sep}/m/b"
    assert form.add_folder(f"/m/a{sep}/m/b", "/m/a") == f"/m/a{sep}/m/b"
    assert form.add_folder("/m/a", "") == "/m/a"


def test_the_per_model_form_comes_from_the_preset_model() -> None:
    """A model's Settings… is made by the same form data from ``ModelPreset``: each field
    named by its key in models.ini, optional (its default applies while unset)."""
    from app.core.presets.field_meta import PRESET_GROUPS
    from app.core.presets.fields import ModelPreset
    from app.core.presets.keys import field_errors

    fields = {f.name: f for f in form.form_fields(ModelPreset)}
    assert list(fields) == [ModelPreset.model_fields[n].alias for n in ModelPreset.model_fields]
    assert [g for g, _ in form.tabs(list(fields.values()))] == list(PRESET_GROUPS)
    assert all(f.optional and f.applies is not None for f in fields.values())
    assert fields["ctx-size"].kind is Kind.INT and fields["ctx-size"].minimum == 0
    assert fields["flash-attn"].kind is Kind.CHOICE
    assert fields["flash-attn"].choices == ("on", "off", "auto")
    assert fields["mmap"].kind is Kind.BOOL and fields["temp"].kind is Kind.FLOAT
    assert fields["top-p"].maximum == 1
    draft = fields["model-draft"]
    assert draft.kind is Kind.PATH and draft.browse is Browse.FILE and draft.suggest == "models"
    assert fields["pinned"].applies is Applies.NOW
    assert fields["ctx-size"].applies is Applies.NEXT_LOAD
    assert "ctx-size" in fields["ctx-size"].tooltip
    assert form.field_error("ctx-size", "-1", field_errors) == (
        "Input should be greater than or equal to 0."
    )
    assert form.field_error("n-gpu-layers", "all", field_errors) is None
