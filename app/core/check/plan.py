"""Which models a check covers: FamilyLog's two (and their pair), all, or one."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.core.models.catalogue import role_entries

KINDS = ("llm", "vlm", "embeddings")  # /api/v0/models' types; a reranker is "embeddings"


def choose(
    models: list[dict[str, Any]], which: str | None, roles: dict[str, str]
) -> tuple[list[str], tuple[str, str] | None]:
    """(the models to check, FamilyLog's pair to check after them or None).

    ``which``: None checks FamilyLog's models (``roles``: role -> key of the configured
    ones) and their pair, or every model when none is configured; "all" every model and
    the pair; a key that model alone."""
    every = [m["id"] for m in models if m.get("type") in KINDS]
    pair = (roles["vision"], roles["llm"]) if "vision" in roles and "llm" in roles else None
    if which == "all":
        return every, pair
    if which:
        return [which], None
    if roles:
        return list(dict.fromkeys(roles.values())), pair
    return every, None


def familylog_roles(settings: Settings) -> dict[str, str]:
    """FamilyLog's configured models by role ("vision", "llm"): their keys."""
    return {role: e.key for role, e in role_entries(settings).items() if e.configured}
