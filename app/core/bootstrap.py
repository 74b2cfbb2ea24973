"""Build the core with every service the settings ask for; the tray and --headless share it."""

from __future__ import annotations

from app.config import Settings
from app.core.app_core import AppCore
from app.core.supervisor import Supervisor
from app.paths import AppPaths
from app.platform.processes import ProcessPlatform


def build_core(
    settings: Settings, paths: AppPaths, *, platform: ProcessPlatform | None = None
) -> AppCore:
    core = AppCore(settings, paths, platform=platform)
    core.add_service(Supervisor(core))  # restarts crashed and hung servers
    return core
