"""What the runs service needs from the rest of the core, and nothing more."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.config import SettingsSource
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.notices import NoticeBus


@dataclass(frozen=True)
class RunDeps:
    lifecycle: ModelLifecycle
    settings: SettingsSource  # the settings in force
    notices: NoticeBus
    runs_dir: Path  # one log file per run
    history_file: Path
    api_port: Callable[[], int | None]  # the port the app's API listens on, if it does
