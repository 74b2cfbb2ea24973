"""State tables: which state may follow which (as llama-swap's ``process.go`` has). A change
its table does not allow is a bug in the app, never the user's doing: ``check`` raises
``IllegalTransitionError`` before anything changes."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from typing import Generic, TypeVar

S = TypeVar("S", bound=enum.Enum)


class IllegalTransitionError(RuntimeError):
    """A state change its table does not allow (a bug; the message says what and where)."""


class Transitions(Generic[S]):
    """The allowed next states of each state of ``states``. Staying in a state is always
    allowed (its other fields change: a new error, a new PID)."""

    def __init__(self, what: str, states: type[S], allowed: Mapping[S, Collection[S]]) -> None:
        missing = [s for s in states if s not in allowed]
        if missing:
            raise ValueError(f"The {what} state table has no row for {missing}")
        self.what = what  # "server", "model": names the machine in messages
        self.allowed: dict[S, frozenset[S]] = {s: frozenset(n) for s, n in allowed.items()}

    def allows(self, old: S, new: S) -> bool:
        return new is old or new in self.allowed[old]

    def check(self, old: S, new: S, who: str) -> None:
        """Raise ``IllegalTransitionError`` unless ``old -> new`` is allowed (``who``: the
        port or model it happens to, for the message)."""
        if not self.allows(old, new):
            may = ", ".join(sorted(str(s) for s in self.allowed[old])) or "nothing"
            raise IllegalTransitionError(
                f"{who}: {self.what} state {old} -> {new} is not allowed "
                f"(from {old} only {may} may follow)"
            )
