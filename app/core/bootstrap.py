"""Build the core with every service the settings ask for; the tray and --headless share it."""

from __future__ import annotations

from app.config import Settings
from app.core.app_core import AppCore
from app.paths import AppPaths
from app.platform.processes import ProcessPlatform


def build_core(
    settings: Settings, paths: AppPaths, *, platform: ProcessPlatform | None = None
) -> AppCore:
    core = AppCore(settings, paths, platform=platform)
    if settings.API_ENABLED:
        from app.core.api.server import ApiServer

        core.api = ApiServer(core, settings)
        core.add_service(core.api)
    return core
