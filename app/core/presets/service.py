"""Each model's own settings as the rest of the app asks for them: what a load uses (``[*]``,
the model's section, then the request's load config), the draft model resolved and checked,
and the per-model form's values, defaults and choices.

The catalogue and the settings come in as plain callables and protocols, so this package
imports nothing of the model lifecycle that uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from app.config import Settings
from app.core.presets.draft import draft_problem
from app.core.presets.field_meta import APP_START, NEXT_LOAD, NOW
from app.core.presets.fields import ModelPreset
from app.core.presets.keys import KEYS, extra, field_errors, key_of
from app.core.presets.store import PresetError, PresetStore, value_text

log = logging.getLogger(__name__)

DRAFT_KEY = key_of("model_draft")


class DraftRefusedError(PresetError):
    """The draft model cannot draft for the model (another vocabulary, a missing file)."""


class Model(Protocol):
    """A catalogue entry, as far as the presets need one."""

    @property
    def key(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    @property
    def path(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def role(self) -> str | None: ...

    @property
    def load_at_start(self) -> bool: ...


class ModelFinder(Protocol):
    def find(self, name: str | None) -> Model | None: ...

    def entries(self) -> list[Model]: ...


@dataclass(frozen=True)
class PresetForm:
    """What the per-model form shows for one model."""

    key: str
    section: str  # the section it is saved as
    path: Path  # the preset file
    values: dict[str, str]  # what the model's own section sets, as the file's text
    defaults: dict[str, str] = field(default_factory=dict)  # what applies while unset (text)
    notes: dict[str, str] = field(default_factory=dict)  # where that default comes from
    drafts: tuple[str, ...] = ()  # catalogue keys offered as draft models
    problem: str | None = None  # why the file or the section cannot be used now


# the app's settings that stand in for a key no section sets
_FROM_SETTINGS = {
    "ctx_size": ("LLAMA_CTX_SIZE", lambda s: s.LLAMA_CTX_SIZE),
    "n_gpu_layers": ("LLAMA_GPU_LAYERS", lambda s: s.LLAMA_GPU_LAYERS),
    "ttl": ("IDLE_UNLOAD_MINUTES", lambda s: round(s.IDLE_UNLOAD_MINUTES * 60)),
}


_WHEN = {
    NEXT_LOAD: "from the next load of the model",
    NOW: "at once",
    APP_START: "when the app starts",
}


def applies_words(keys: Iterable[str]) -> str:
    """When changes of ``keys`` (the file's keys) take effect, in words."""
    by: dict[str, list[str]] = {when: [] for when in _WHEN}
    for name in (KEYS[k] for k in keys if k in KEYS):
        title = ModelPreset.model_fields[name].title or name
        by[extra(name)["applies"]].append(title)
    return " ".join(f"{', '.join(titles)}: {_WHEN[when]}." for when, titles in by.items() if titles)


def _as_value(key: str, words: str) -> str | None:
    """``words`` as the file's text for ``key`` when it is a valid value ("f16", "on")."""
    try:
        value = getattr(ModelPreset.model_validate({key: words}), KEYS[key])
    except ValidationError:
        return None
    return value_text(value)


class Presets:
    def __init__(
        self,
        store: PresetStore,
        catalogue: ModelFinder,
        settings: Callable[[], Settings],
    ) -> None:
        self.store = store
        self._catalogue = catalogue
        self._settings = settings

    # ── What a load uses ─────────────────────────────────────────────────────
    def effective(self, model: Model) -> ModelPreset:
        """``[*]``, then the model's own section (``PresetError`` when one cannot be used)."""
        return self.store.effective(model)

    def for_load(
        self, model: Model, request: ModelPreset | None = None, *, check_draft: bool = True
    ) -> ModelPreset:
        """What loading ``model`` uses: ``[*]``, its own section, then the request's load
        config on top; ``model_draft`` as a file, checked against the model (unless not
        ``check_draft``: only to compare with a running server). Raises ``PresetError`` (a
        section cannot be used) or ``DraftRefusedError``, before anything starts. Blocking
        (reads GGUF headers once per file version): call it off the event loop."""
        preset = self.effective(model)
        if request is not None:
            preset = request.over(preset)
        if preset.model_draft:
            draft = self.draft_path(preset.model_draft)
            why = draft_problem(model.path, draft) if check_draft else None
            if why is not None:
                raise DraftRefusedError(f"Cannot use the draft model for {model.key}: {why}.")
            preset = preset.model_copy(update={"model_draft": str(draft)})
        return preset

    def draft_path(self, value: str) -> Path:
        """The file of a ``model-draft`` value: a catalogue model by key or other name, else
        a path (``~`` expanded; a relative one from the preset file's folder)."""
        found = self._catalogue.find(value)
        if found is not None and found.path:
            return Path(found.path)
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.store.path.parent / path

    def draft_error(self, model: Model, value: str) -> str | None:
        """Why ``value`` cannot be ``model``'s draft model; None when it can (blocking)."""
        return draft_problem(model.path, self.draft_path(value))

    # ── Reading for the rest of the app ──────────────────────────────────────
    def has_own(self, model: Model) -> bool:
        return self.store.has_own(model)

    def problem(self, model: Model) -> str | None:
        return self.store.problem(model)

    def pinned(self, model: Model) -> bool:
        """Placement never evicts it (a section that cannot be read pins nothing)."""
        try:
            return bool(self.effective(model).pinned)
        except PresetError:
            return False

    def ttl(self, model: Model) -> int | None:
        """Its own idle unload in seconds (0: never); None: ``IDLE_UNLOAD_MINUTES``."""
        try:
            return self.effective(model).ttl
        except PresetError:
            return None

    def aliases(self, model: Model) -> tuple[str, ...]:
        try:
            return self.store.own(model).aliases
        except PresetError:
            return ()

    def to_load_at_start(self) -> list[Model]:
        """Every catalogue model to load when the app starts: a role marked so in the
        settings, or a model whose preset says ``load-on-startup``."""
        out = []
        for entry in self._catalogue.entries():
            try:
                preset = self.effective(entry)
            except PresetError as e:
                log.warning("%s", e)
                continue
            wanted = preset.load_on_startup
            if wanted or (wanted is None and entry.load_at_start):
                out.append(entry)
        return out

    # ── The per-model form ───────────────────────────────────────────────────
    def form(self, model: Model) -> PresetForm:
        """The own values, the defaults and the draft models to offer for ``model``."""
        problem = None
        values: dict[str, str] = {}
        for_all = ModelPreset()
        try:
            own = self.store.own(model)
            values = {key_of(n): value_text(v) for n, v in own.set_fields().items()}
            for_all = self.store.for_all()
        except PresetError as e:
            problem = str(e)
        try:
            section = self.store.section_name(model) or model.key
        except PresetError:
            section = model.key
        s = self._settings()
        defaults: dict[str, str] = {}
        notes: dict[str, str] = {}
        for name in ModelPreset.model_fields:
            key = key_of(name)
            if name in for_all.model_fields_set:
                defaults[key] = value_text(getattr(for_all, name))
                notes[key] = f"{defaults[key]} (the [*] section)"
            elif name in _FROM_SETTINGS:
                setting, get = _FROM_SETTINGS[name]
                defaults[key] = value_text(get(s))
                notes[key] = f"{defaults[key]} (Settings: {setting})"
            elif name == "load_on_startup" and model.role:
                defaults[key] = value_text(model.load_at_start)
                notes[key] = f"{'on' if model.load_at_start else 'off'} (Settings)"
            else:
                words = extra(name)["default_text"]
                notes[key] = words
                value = _as_value(key, words)  # llama-server's default, where it is one
                if value is not None:
                    defaults[key] = value
        drafts = tuple(
            e.key
            for e in self._catalogue.entries()
            if e.key != model.key and e.type == "llm" and e.path and e.path != model.path
        )
        return PresetForm(
            key=model.key,
            section=section,
            path=self.store.path,
            values=values,
            defaults=defaults,
            notes=notes,
            drafts=drafts,
            problem=problem,
        )

    def check(self, model: Model, values: dict[str, str]) -> dict[str, str]:
        """What is wrong with ``values`` (the file's keys and text) for ``model``, by key;
        empty when they can be saved. The draft model is checked too (blocking)."""
        errors: dict[str, str] = {}
        for key, _value, msg in field_errors(values):
            errors.setdefault(key, f"{msg}.")
        draft = values.get(DRAFT_KEY)
        if draft and DRAFT_KEY not in errors:
            why = self.draft_error(model, draft)
            if why:
                errors[DRAFT_KEY] = why + "."
        return errors

    def save(self, model: Model, values: dict[str, str]) -> ModelPreset:
        """Write ``values`` as ``model``'s own settings (none: its section goes). Raises
        ``ValueError`` naming what is wrong (nothing is written then), ``OSError``."""
        errors = self.check(model, values)
        if errors:
            raise ValueError("\n".join(f"{k}: {msg}" for k, msg in errors.items()))
        try:
            preset = ModelPreset.model_validate(values)
        except ValidationError as e:  # checked above; kept for a clear message all the same
            raise ValueError(str(e)) from None
        self.store.save(model, preset)
        return preset
