"""A download service as the core builds it (catalogue, notices, state file), on a temp
model folder with a free-space source and a free-memory figure the test sets."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.core.downloads.listing import AfterDownload
from app.core.downloads.service import Downloads
from app.core.lifecycle.placement import Free
from app.core.models.catalogue import Catalogue
from app.core.notices import NoticeBus
from app.paths import AppPaths

GB = 1024**3


class Rig:
    """A downloads service with its catalogue, notices and state file, as the core has them."""

    def __init__(self, tmp: Path, free_disk: int = 500 * GB) -> None:
        self.models = tmp / "models"
        self.paths = AppPaths.resolve().ensure()
        self.settings = Settings(_env_file=None, MODEL_DIRS=str(self.models))  # type: ignore[call-arg]
        self.catalogue = Catalogue(lambda: self.settings)
        self.notices = NoticeBus()
        self.free_disk = free_disk
        self.free_ram = 16 * GB
        self.made: list[Downloads] = []

    def service(self) -> Downloads:
        d = Downloads(
            lambda: self.settings,
            self.paths.state_dir / "downloads.json",
            notices=self.notices,
            on_complete=AfterDownload(self.catalogue, lambda: self.settings, self.paths),
            disk_free=lambda _path: self.free_disk,
            free_memory=lambda: Free(self.free_ram, "available RAM"),
            retry_backoff=0.0,
        )
        self.made.append(d)
        return d

    def dest(self, repo: str, name: str) -> Path:
        return self.models / repo / name
