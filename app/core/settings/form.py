"""Settings… as data, without Qt: one ``FormField`` per field of the settings model.

Everything the dialog shows comes from the pydantic fields: the title, the description,
the tab and how a change applies (``json_schema_extra={"group": ..., "applies": ...}``),
the kind of editor (from the type and the name), the limits (``ge``/``gt``/``le``/``lt``)
and the choices of a ``Literal``. A new setting therefore appears in the dialog without
new UI code.

Values travel as text, the way the settings file holds them: ``to_text`` turns a value
of ``Settings`` into that text, ``field_error`` checks a text with the same model the
file is checked with when it is saved and read.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from app.config import GROUPS, Applies, Settings
from app.core.settings.settings_file import field_errors, overridden_by_environment

OTHER = "Other"  # the tab of a field that names none
DECIMALS = 2  # shown for float settings
INT_RANGE = (-(2**31), 2**31 - 1)  # what an int editor can hold (a Qt spin box's range)
FLOAT_RANGE = (-1e12, 1e12)
GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"
ANY_FILTER = "All files (*)"


APPLIES_TEXT = {
    Applies.NOW: "A change applies at once.",
    Applies.NEXT_LOAD: "A change applies from the next load of a model.",
    Applies.RESTART: "A change applies after restart.",
}


class Kind(StrEnum):
    BOOL = "bool"  # check box
    INT = "int"  # spin box
    FLOAT = "float"  # spin box with decimals
    CHOICE = "choice"  # combo box (a Literal)
    SECRET = "secret"  # password line edit
    PATH = "path"  # line edit + Browse…
    TEXT = "text"  # line edit


class Browse(StrEnum):
    FILE = "file"
    FOLDER = "folder"
    FOLDERS = "folders"  # a PATH-like list: Browse… adds one


@dataclass(frozen=True)
class FormField:
    name: str
    title: str
    description: str
    group: str
    kind: Kind
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # gt rather than ge
    exclusive_maximum: bool = False  # lt rather than le
    browse: Browse | None = None
    file_filter: str = ""
    applies: Applies | None = None  # when a change takes effect (every model field says)
    optional: bool = False  # may be left unset (a per-model setting: the default applies)
    suggest: str | None = None  # what the editor offers to choose from ("models")
    default_text: str = ""  # what applies while an optional field is unset

    @property
    def step_limits(self) -> tuple[float, float]:
        """Where the arrows of a spin box stop: the model's limits (an exclusive one moved
        in by one step), else the editor's own range. Typing is not held to them: a typed
        value out of the limits is shown as an error, with pydantic's message."""
        lo_type, hi_type = INT_RANGE if self.kind is Kind.INT else FLOAT_RANGE
        step = 1 if self.kind is Kind.INT else 10**-DECIMALS
        lo = lo_type if self.minimum is None else self.minimum + step * self.exclusive_minimum
        hi = hi_type if self.maximum is None else self.maximum - step * self.exclusive_maximum
        return lo, hi

    @property
    def limits_text(self) -> str:
        """The limits in words, e.g. "1 to 65535", "more than 0"; empty without limits."""
        lo = None if self.minimum is None else number_text(self.minimum)
        hi = None if self.maximum is None else number_text(self.maximum)
        if (
            lo is not None
            and hi is not None
            and not (self.exclusive_minimum or self.exclusive_maximum)
        ):
            return f"{lo} to {hi}"
        parts = []
        if lo is not None:
            parts.append(f"more than {lo}" if self.exclusive_minimum else f"at least {lo}")
        if hi is not None:
            parts.append(f"less than {hi}" if self.exclusive_maximum else f"at most {hi}")
        return ", ".join(parts)

    @property
    def tooltip(self) -> str:
        lines = [self.name, self.description]
        if self.limits_text:
            lines.append(f"Allowed: {self.limits_text}.")
        if self.applies is not None:
            lines.append(APPLIES_TEXT[self.applies])
        return "\n".join(line for line in lines if line)


def _unwrap_optional(annotation: object) -> tuple[object, bool]:
    """``X | None`` -> (X, True); anything else -> (itself, False)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _kind(name: str, annotation: object) -> tuple[Kind, tuple[str, ...]]:
    if typing.get_origin(annotation) is typing.Literal:
        return Kind.CHOICE, tuple(str(a) for a in typing.get_args(annotation))
    if annotation is bool:
        return Kind.BOOL, ()
    if annotation is int:
        return Kind.INT, ()
    if annotation is float:
        return Kind.FLOAT, ()
    if annotation is SecretStr:
        return Kind.SECRET, ()
    if _browse(name) is not None:
        return Kind.PATH, ()
    return Kind.TEXT, ()


def _browse(name: str) -> tuple[Browse, str] | None:
    if name.endswith(("_GGUF", "_MMPROJ", "model-draft")):
        return Browse.FILE, GGUF_FILTER
    if name.endswith("_PATH"):
        return Browse.FILE, ANY_FILTER
    if name.endswith("_DIR"):
        return Browse.FOLDER, ""
    if name.endswith("_DIRS"):
        return Browse.FOLDERS, ""
    return None


def form_field(name: str, info: FieldInfo) -> FormField:
    """The editor for one field of a settings model (its alias names it, if it has one)."""
    name = info.alias or name
    annotation, optional = _unwrap_optional(info.annotation)
    kind, choices = _kind(name, annotation)
    limits: dict[str, float] = {}
    for m in info.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(m, attr, None) is not None:
                limits[attr] = getattr(m, attr)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    found = _browse(name) if kind is Kind.PATH else None
    browse, file_filter = found or (None, "")
    return FormField(
        name=name,
        title=info.title or name,
        description=info.description or "",
        group=str(extra.get("group") or OTHER),
        kind=kind,
        choices=choices,
        minimum=limits.get("ge", limits.get("gt")),
        maximum=limits.get("le", limits.get("lt")),
        exclusive_minimum="gt" in limits,
        exclusive_maximum="lt" in limits,
        browse=browse,
        file_filter=file_filter,
        applies=Applies(str(extra["applies"])) if "applies" in extra else None,
        optional=optional,
        suggest=extra.get("suggest") or None,
        default_text=str(extra.get("default_text") or ""),
    )


def form_fields(model: type[BaseModel] = Settings) -> list[FormField]:
    """Every field of a settings model (``Settings``, a model's preset), in its order."""
    return [form_field(name, info) for name, info in model.model_fields.items()]


def tabs(fields: list[FormField]) -> list[tuple[str, list[FormField]]]:
    """The fields by tab: the tabs of ``GROUPS`` in that order, then any other group in
    the order its first field comes (a field without a group goes to "Other")."""
    order = list(GROUPS)
    for f in fields:
        if f.group not in order:
            order.append(f.group)
    by_group = [(g, [f for f in fields if f.group == g]) for g in order]
    return [(g, fs) for g, fs in by_group if fs]


def number_text(value: float) -> str:
    """A number as the settings file holds it: 120.0 → "120", 0.25 → "0.25"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_text(value: object) -> str:
    """A value of ``Settings`` (or of an editor) as the text written to the settings file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, int | float):
        return number_text(value)
    return str(value)


Checker = Callable[[dict[str, str]], list[tuple[str, object, str]]]


def field_error(name: str, text: str, check: Checker = field_errors) -> str | None:
    """Pydantic's message for ``text`` as the value of ``name``; None when it is valid.
    ``check``: the model's own (``field_errors`` for ``Settings``)."""
    for where, _value, msg in check({name: text}):
        if where == name:
            return f"{msg}."
    return None


def environment_note(name: str) -> str | None:
    """Why a setting cannot be edited here: the environment sets it and wins over the file."""
    if not overridden_by_environment([name]):
        return None
    return (
        f"Set by the environment variable {name}, which wins over the settings file; "
        "change it there."
    )


def add_folder(folders: str, folder: str) -> str:
    """``folders`` (separated like PATH) with ``folder`` added at the end, once."""
    parts = [p for p in folders.split(os.pathsep) if p]
    if folder and folder not in parts:
        parts.append(folder)
    return os.pathsep.join(parts)
