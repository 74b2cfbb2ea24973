"""PLACEHOLDER (issue 6 branch): the tray branch (issue 3) owns this module.

Only here so ``--process-now`` works before the branches are merged: it never finds a
running instance, so ``app.main`` runs the FamilyLog run headless. Keep the tray
branch's real implementation when merging.
"""

from __future__ import annotations

from app.paths import AppPaths


def forward(verb: str, paths: AppPaths, timeout: float = 1.0) -> str | None:
    """Ask the running instance to do ``verb``; None when none answers (always, here)."""
    return None
