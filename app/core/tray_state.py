"""The one state the tray icon shows (kept apart so the icon can be drawn before the core
is imported)."""

from __future__ import annotations

import enum


class TrayState(enum.StrEnum):
    IDLE = "idle"  # nothing loaded
    LOADING = "loading"  # loading, switching or stopping
    READY = "ready"
    RUN = "run"  # a FamilyLog run in progress
    ERROR = "error"
