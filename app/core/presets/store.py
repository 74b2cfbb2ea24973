"""``models.ini`` in the app home: each model's own settings, by catalogue key.

The file is llama.cpp's preset INI (``ini.py``); a section is named by a model's catalogue
key (or by another name of the model, as llama.cpp's router names models by file), ``[*]``
holds settings for every model. Only what the app reads is checked: the ``[*]`` section and
the section of a model that is loaded, saved or shown; a section for anything else is kept as
it is. An option the app does not know, or a value it cannot take, is refused with the file
and line, and the model it belongs to does not load until it is fixed (loading it with other
settings than the ones written could run a big model out of memory).

The file is read again whenever it changed on disk, so a hand edit applies on the next load;
the app writes it atomically, changing only the lines of the section it saves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from app.atomic import write_atomic
from app.core.presets.fields import ModelPreset
from app.core.presets.ini import IniDocument, PresetSyntaxError, Section
from app.core.presets.keys import field_for_key, key_of, known_keys
from app.core.presets.values import FALSE_WORDS, TRUE_WORDS

log = logging.getLogger(__name__)

GLOBAL = "*"  # llama.cpp's section of settings for every model
RESERVED = "version"  # llama.cpp's reserved key, skipped wherever it is
HEADER = (
    "; Per-model settings of FamilyLog Tray, in llama.cpp's preset format",
    "; (llama-server --models-preset). One section per model, named by its key;",
    "; keys are llama-server's long options without the dashes. [*] applies to every",
    "; model. Settings… in the models window edits this file.",
)


class PresetError(ValueError):
    """The preset file, or one of its sections, cannot be used; the message names the file
    and the line."""


class Named(Protocol):
    """A model as the store needs it (a catalogue entry is one)."""

    @property
    def key(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...


Listener = Callable[[], None]


def value_text(value: object) -> str:
    """A field's value as the preset file holds it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_section(section: Section, path: Path | str) -> ModelPreset:
    """The preset of one section; ``PresetError`` names the line of the first problem."""
    values: dict[str, object] = {}
    lines: dict[str, tuple[int, str, str]] = {}
    for e in section.entries:
        if e.key == RESERVED:
            continue
        found = field_for_key(e.key)
        if found is None:
            raise PresetError(
                f"{path} line {e.line}: unknown option '{e.key}' in [{section.name}]. "
                f"Known options: {', '.join(known_keys())}."
            )
        name, negated = found
        value = e.value
        if negated:
            word = value.strip().lower()
            if word not in TRUE_WORDS + FALSE_WORDS:
                raise PresetError(
                    f"{path} line {e.line}: {e.key} = {value!r} in [{section.name}] is not "
                    "true or false."
                )
            value = "false" if word in TRUE_WORDS else "true"
        values[name] = value
        lines[name] = (e.line, e.key, e.value)
    try:
        return ModelPreset.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        loc = first["loc"][0] if first["loc"] else ""
        name = next((n for n in lines if n == loc or key_of(n) == loc), None)
        line, key, raw = lines[name] if name else (section.line, "", "")
        what = f"{key} = {raw!r}" if key else f"[{section.name}]"
        raise PresetError(
            f"{path} line {line}: {what} in [{section.name}]: {first['msg'].rstrip('.')}."
        ) from None


class PresetStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._doc: IniDocument | None = None
        self._error: PresetError | None = None
        self._listeners: list[Listener] = []

    # ── The file ─────────────────────────────────────────────────────────────
    def document(self) -> IniDocument:
        """The file as it is on disk now (read again when it changed); an empty document when
        there is none. ``PresetError`` when it cannot be read."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if self._doc is None or stamp != self._stamp:
            self._stamp = stamp
            self._doc, self._error = None, None
            try:
                text = self.path.read_text(encoding="utf-8") if stamp else ""
                self._doc = IniDocument.parse(text, self.path)
            except PresetSyntaxError as e:
                self._error = PresetError(str(e))
            except (OSError, UnicodeDecodeError) as e:
                self._error = PresetError(
                    f"Cannot read the per-model settings {self.path}: {e}. Fix or remove the file."
                )
            if self._error is not None:
                log.warning("%s", self._error)
        if self._error is not None:
            raise self._error
        assert self._doc is not None
        return self._doc

    def file_problem(self) -> str | None:
        """Why the file cannot be read at all; None when it can (or does not exist)."""
        try:
            self.document()
        except PresetError as e:
            return str(e)
        return None

    # ── Reading ──────────────────────────────────────────────────────────────
    def section_name(self, model: Named) -> str | None:
        """The section of ``model``: the one named by its key, else by another of its names."""
        names = set(self.document().names())
        for name in (model.key, *model.aliases):
            if name and name != GLOBAL and name in names:
                return name
        return None

    def _section(self, name: str) -> ModelPreset:
        found = self.document().named(name)
        return read_section(found[-1], self.path) if found else ModelPreset()

    def own(self, model: Named) -> ModelPreset:
        """What ``model``'s own section sets (empty without one); ``PresetError`` if it
        cannot be used."""
        name = self.section_name(model)
        return self._section(name) if name else ModelPreset()

    def for_all(self) -> ModelPreset:
        """The ``[*]`` section: settings for every model."""
        return self._section(GLOBAL)

    def effective(self, model: Named) -> ModelPreset:
        """``[*]``, then the model's own section over it: what a load of ``model`` uses (the
        app's settings fill in what neither sets)."""
        return self.own(model).over(self.for_all())

    def has_own(self, model: Named) -> bool:
        """True when ``model`` has a section of its own (the models window marks it)."""
        try:
            return self.section_name(model) is not None
        except PresetError:
            return False

    def problem(self, model: Named) -> str | None:
        """Why ``model`` cannot load with its settings; None when it can."""
        try:
            self.effective(model)
        except PresetError as e:
            return str(e)
        return None

    def sections(self) -> list[str]:
        """Every section name in the file, in order."""
        return self.document().names()

    # ── Writing ──────────────────────────────────────────────────────────────
    def save(self, model: Named, preset: ModelPreset) -> None:
        """Write ``preset`` as ``model``'s section (removed when it sets nothing); every other
        line of the file is kept. Raises ``PresetError`` when the file cannot be read (it is
        then left as it is) and ``OSError`` when it cannot be written."""
        self._write(self.section_name(model) or model.key, preset)

    def save_for_all(self, preset: ModelPreset) -> None:
        self._write(GLOBAL, preset)

    def _write(self, name: str, preset: ModelPreset) -> None:
        read = self.document()
        doc = IniDocument(list(read.lines), self.path, read.newline)  # the read one stays as is
        values = {key_of(n): value_text(v) for n, v in _ordered(preset)}
        if not doc.lines and values:
            doc.lines += [*HEADER, f"{RESERVED} = 1"]
        doc.set_section(name, values, canon=_canonical_key)
        try:
            mode: int | None = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        write_atomic(self.path, doc.text(), mode=mode)
        self._doc, self._stamp = None, None  # read back: what is on disk is what counts
        log.info("Saved the settings of [%s] to %s", name, self.path)
        for cb in list(self._listeners):
            try:
                cb()
            except Exception:
                log.exception("A preset listener failed")

    def subscribe(self, cb: Listener) -> Callable[[], None]:
        """``cb()`` after every save."""
        self._listeners.append(cb)
        return lambda: self._listeners.remove(cb) if cb in self._listeners else None


def _ordered(preset: ModelPreset) -> Sequence[tuple[str, object]]:
    """The fields ``preset`` sets, in the model's order."""
    return [
        (n, getattr(preset, n)) for n in ModelPreset.model_fields if n in preset.model_fields_set
    ]


def _canonical_key(key: str) -> str | None:
    found = field_for_key(key)
    return key_of(found[0]) if found else None
