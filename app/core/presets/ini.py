"""llama.cpp's preset INI (``llama-server --models-preset``), read and edited line by line so
that nothing the app does not change is lost: sections it does not know, comments, blank
lines and the order of everything stay as they were.

The grammar is llama.cpp's (``common/preset.cpp``): a ``[name]`` line starts a section; a
``key = value`` line has a key of letters, digits, ``_``, ``.`` and ``-``; ``;`` or ``#``
starts a comment, on a line of its own or after a value (so a value holds neither, and its
trailing blanks are not part of it); lines before the first section belong to none (llama.cpp
reads ``version`` there). ``configparser`` reads another dialect (``:`` as a separator,
``%`` interpolation, inline comments only after a blank, continuation lines) and drops
comments when it writes, hence this small reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_HEADER = re.compile(r"^[ \t]*\[[ \t]*(?P<name>[^\]]*?)[ \t]*\][ \t]*(?P<rest>[;#].*)?$")
_KV = re.compile(
    r"^(?P<lead>[ \t]*)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*"
    r"(?P<value>[^;#]*?)(?P<rest>[ \t]*(?:[;#].*)?)$"
)
_BLANK_OR_COMMENT = re.compile(r"^[ \t]*(?:[;#].*)?$")
_NEWLINES = re.compile(r"\r\n|\n|\r")


class PresetSyntaxError(ValueError):
    """A line of the preset file that is none of: section, key = value, comment, blank."""

    def __init__(self, path: Path | str, line: int, text: str) -> None:
        self.path = str(path)
        self.line = line
        super().__init__(
            f"{path} line {line}: cannot read {text.strip()!r}. Each line must be a section "
            "([model key]), key = value, or a comment starting with ; or #."
        )


@dataclass(frozen=True)
class Entry:
    key: str
    value: str
    line: int  # 1-based


@dataclass
class Section:
    name: str
    line: int  # of its header, 1-based
    entries: list[Entry] = field(default_factory=list)

    def get(self, key: str) -> Entry | None:
        """The last entry for ``key`` (llama.cpp keeps the last of a repeated key)."""
        found = [e for e in self.entries if e.key == key]
        return found[-1] if found else None


@dataclass
class _Span:
    """Where a section lies in the lines (0-based, ``end`` exclusive)."""

    header: int
    end: int
    kv: list[int]


class IniDocument:
    """The lines of a preset file; ``sections`` is read from them, edits change only the
    lines they must."""

    def __init__(self, lines: list[str], path: Path | str = "models.ini", newline: str = "\n"):
        self.lines = lines
        self.path = path
        self.newline = newline
        self._check()

    @classmethod
    def parse(cls, text: str, path: Path | str = "models.ini") -> IniDocument:
        """Read ``text``; raises ``PresetSyntaxError`` with the line number."""
        text = text.removeprefix("\ufeff")
        m = _NEWLINES.search(text)
        newline = m.group(0) if m else "\n"
        lines = _NEWLINES.split(text)
        if lines and lines[-1] == "":
            lines.pop()
        return cls(lines, path, newline)

    def text(self) -> str:
        return "".join(line + self.newline for line in self.lines)

    def _check(self) -> None:
        for i, line in enumerate(self.lines):
            if not (_HEADER.match(line) or _KV.match(line) or _BLANK_OR_COMMENT.match(line)):
                raise PresetSyntaxError(self.path, i + 1, line)

    # ── Reading ──────────────────────────────────────────────────────────────
    def preamble(self) -> list[Entry]:
        """The ``key = value`` lines before the first section (``version``)."""
        out = []
        for i, line in enumerate(self.lines):
            if _HEADER.match(line):
                break
            m = _KV.match(line)
            if m:
                out.append(Entry(m.group("key"), m.group("value"), i + 1))
        return out

    def sections(self) -> list[Section]:
        """Every section in file order (a name given twice appears twice)."""
        out: list[Section] = []
        for name, span in self._spans():
            sec = Section(name, span.header + 1)
            for i in span.kv:
                m = _KV.match(self.lines[i])
                assert m is not None
                sec.entries.append(Entry(m.group("key"), m.group("value"), i + 1))
            out.append(sec)
        return out

    def named(self, name: str) -> list[Section]:
        return [s for s in self.sections() if s.name == name]

    def names(self) -> list[str]:
        return list(dict.fromkeys(s.name for s in self.sections()))

    def _spans(self) -> list[tuple[str, _Span]]:
        out: list[tuple[str, _Span]] = []
        for i, line in enumerate(self.lines):
            h = _HEADER.match(line)
            if h:
                if out:
                    out[-1][1].end = i
                out.append((h.group("name"), _Span(i, len(self.lines), [])))
            elif out and _KV.match(line):
                out[-1][1].kv.append(i)
        return out

    # ── Editing ──────────────────────────────────────────────────────────────
    def set_section(
        self,
        name: str,
        values: dict[str, str],
        canon: Callable[[str], str | None] = lambda k: k,
    ) -> None:
        """Make section ``name`` hold exactly ``values`` (key -> value text). A line whose
        key (``canon`` maps other spellings to the key) is in ``values`` is rewritten in
        place, keeping its spelling and its comment; a key no longer set is removed; new keys
        follow the last one. Comments and blank lines stay. Empty ``values`` remove the
        section's header and keys (its comments stay). A new section goes at the end."""
        _check_name(name)
        for key, value in values.items():
            _check_value(key, value)
        spans = [s for n, s in self._spans() if n == name]
        if not spans:
            if values:
                self._append(name, values)
            return
        # a name given twice: llama.cpp keeps the last one; the app edits that one and
        # removes the others (their keys would otherwise come back on the next read)
        for span in spans[:-1]:
            self._drop(span.kv + [span.header])
        span = next(s for n, s in self._spans() if n == name)
        pending = dict(values)
        drop: list[int] = []
        for i in span.kv:
            m = _KV.match(self.lines[i])
            assert m is not None
            key = canon(m.group("key")) or m.group("key")
            if key in pending:
                # another spelling (``c``, ``no-mmap``) is written as the key itself: a
                # negated spelling would otherwise turn the value round
                value = pending.pop(key)
                self.lines[i] = f"{m.group('lead')}{key} = {value}{_rest(m)}"
            else:
                drop.append(i)  # not set any more, or a repeat of a key rewritten above
        if not values:
            self._drop([*drop, span.header])
            return
        after = span.kv[-1] if span.kv else span.header
        new = [f"{k} = {v}" for k, v in pending.items()]
        self.lines[after + 1 : after + 1] = new
        self._drop(drop)

    def remove_section(self, name: str) -> None:
        self.set_section(name, {})

    def _append(self, name: str, values: dict[str, str]) -> None:
        if self.lines and self.lines[-1].strip():
            self.lines.append("")
        self.lines.append(f"[{name}]")
        self.lines += [f"{k} = {v}" for k, v in values.items()]

    def _drop(self, indexes: list[int]) -> None:
        for i in sorted(set(indexes), reverse=True):
            del self.lines[i]
            # where a line went: no two blank lines in a row, none at the start or the end
            after_blank = i < len(self.lines) and not self.lines[i].strip()
            if i > 0 and not self.lines[i - 1].strip() and (i == len(self.lines) or after_blank):
                del self.lines[i - 1]
            elif i == 0 and after_blank:
                del self.lines[0]


def _rest(m: re.Match[str]) -> str:
    """The comment after a value, with the blanks before it."""
    rest = m.group("rest")
    return rest if rest.strip() else ""


def _check_name(name: str) -> None:
    if not name or "]" in name or any(c in name for c in "\r\n"):
        raise ValueError(f"{name!r} cannot be a section name of the preset file")


def _check_value(key: str, value: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
        raise ValueError(f"{key!r} cannot be a key of the preset file")
    bad = [c for c in (";", "#", "\n", "\r") if c in value]
    if bad or value != value.strip():
        raise ValueError(
            f"{key} = {value!r} cannot be written to the preset file: a value holds no ; or # "
            "(they start a comment) and no line break"
        )
