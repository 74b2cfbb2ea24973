"""What follows a finished download: the folders read again, so the catalogue lists the
model (under the key LM Studio's layout gives it), and, when the download was asked for a
FamilyLog role (first run), that role set to it in the settings file and put in force."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.config import Settings
from app.core.downloads.jobs import DownloadJob
from app.core.models.catalogue import Catalogue
from app.core.models.entry import LLM, VISION
from app.core.settings.settings_file import update_settings_file
from app.paths import AppPaths

log = logging.getLogger(__name__)

ROLE_KEYS = {VISION: ("VISION_MODEL_GGUF", "VISION_MMPROJ"), LLM: ("LLM_MODEL_GGUF", None)}
Apply = Callable[[Settings], Awaitable[object]]  # puts new settings in force (the core's)


def role_changes(settings: Settings, role: str, model: Path, mmproj: Path | None) -> dict[str, str]:
    """The settings that make ``model`` FamilyLog's ``role`` model; empty when the role
    already has a model file that exists (a download never replaces a choice)."""
    file_key, mmproj_key = ROLE_KEYS[role]
    current = getattr(settings, file_key)
    if current and Path(current).expanduser().is_file():
        return {}
    changes = {file_key: str(model)}
    if mmproj_key:
        changes[mmproj_key] = str(mmproj) if mmproj else ""
    return changes


class AfterDownload:
    """The download service's ``on_complete``: rescan, set the role, return the key. With
    no catalogue (the set-up window, before the core exists) only the role is set."""

    def __init__(
        self,
        catalogue: Catalogue | None,
        settings: Callable[[], Settings],
        paths: AppPaths,
        apply: Apply | None = None,
    ) -> None:
        self.catalogue = catalogue
        self._settings = settings
        self.paths = paths
        self._apply = apply

    async def __call__(self, job: DownloadJob) -> str | None:
        if job.role in ROLE_KEYS:
            await self._set_role(job)
        if self.catalogue is None:
            return None
        await self.catalogue.rescan()
        entry = self.catalogue.by_file(str(job.model_path), str(job.mmproj_path or "") or None)
        return entry.key if entry else None

    async def _set_role(self, job: DownloadJob) -> None:
        assert job.role is not None
        changes = role_changes(self._settings(), job.role, job.model_path, job.mmproj_path)
        if not changes:
            log.info("FamilyLog's %s model is set already; %s is not made it", job.role, job.model)
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, update_settings_file, self.paths.settings_file, changes)
        log.info(
            "FamilyLog's %s model is now %s (%s)", job.role, job.model, self.paths.settings_file
        )
        if self._apply is None:
            return
        # The file is written for the next start; now, the settings in force change the
        # same way (the environment still wins over the file, as at start).
        live = {k: v for k, v in changes.items() if k not in os.environ}
        if live:
            await self._apply(self._settings().model_copy(update=live))
