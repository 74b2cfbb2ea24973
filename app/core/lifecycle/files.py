"""Model files that come, go or move while the app runs.

``Rescanner`` reads the model folders again (the tray's button, ``POST
/api/v0/models/rescan``, ``familylog-tray --rescan``, the folder watch): what came, what
went, and what became of the files of the models that run, told to the user once each.

``FolderWatch`` notices changes by itself: every few seconds it looks at the modification
time of each folder the scan walks (a file added, removed or renamed changes its folder's)
and at the files of the running models; a change is rescanned once the folders have been
quiet for one look (a copy in progress is not read half-way). Polling, not inotify
(``watchfiles``): the same on Linux, macOS and Windows and on network drives, where
file-change events do not reach; no watch limit (``max_user_watches``) to run out of; no
compiled dependency in the bundle; and a look costs one ``stat`` per folder (about a
millisecond for a hundred folders), so it can repeat every ``WATCH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from app.config import SettingsSource
from app.core.discovery.folders import folder_signature, model_dirs
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.states import FILE_GONE, file_identity

WATCH_SECONDS = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rescanned:
    models: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # running models: key -> file note
    problems: list[str] = field(default_factory=list)

    def words(self) -> str:
        parts = [f"{self.models} model{'s' if self.models != 1 else ''}"]
        if self.added:
            parts.append("new: " + ", ".join(self.added))
        if self.removed:
            parts.append("gone: " + ", ".join(self.removed))
        for key, note in self.files.items():
            parts.append(f"{key} runs on ({note})")
        if self.problems:
            parts.append(f"{len(self.problems)} unreadable file(s)")
        return "; ".join(parts)

    def as_json(self) -> dict:
        return {
            "models": self.models,
            "added": self.added,
            "removed": self.removed,
            "running_files": self.files,
            "problems": self.problems,
        }


class Rescanner:
    """Rescans the catalogue of ``lifecycle`` and tells ``notices`` what became of the files
    of running models (once per change)."""

    def __init__(self, lifecycle: ModelLifecycle, notices: NoticeBus) -> None:
        self.lifecycle = lifecycle
        self.notices = notices
        self._told: dict[str, str] = {}

    async def rescan(self) -> Rescanned:
        catalogue = self.lifecycle.catalogue
        before = set(catalogue.known_keys())
        problems = await catalogue.rescan()
        after = catalogue.known_keys()
        result = Rescanned(
            models=len(after),
            added=sorted(set(after) - before),
            removed=sorted(before - set(after)),
            files=self.lifecycle.file_changes(),
            problems=problems,
        )
        self.tell()
        log.info("Rescanned the model folders: %s", result.words())
        return result

    def tell(self) -> None:
        """A notice for each running model whose file moved or changed since last told."""
        now = self.lifecycle.file_changes()
        for key, note in now.items():
            if self._told.get(key) == note:
                continue
            if note == FILE_GONE:
                text = (
                    f"The file of {key} was moved or deleted while it runs. It stays loaded "
                    "(and keeps serving) until you unload it; to load it again, load it "
                    "from where the file is now."
                )
            else:
                text = (
                    f"The file of {key} was replaced while it runs; it still serves the old "
                    "one. Restart it (unload, load) to use the new file."
                )
            self.notices.emit(Notice(Level.WARNING, f"{key}: {note}", text))
        self._told = now


class FolderWatch:
    """A core service: rescan when the model folders or the running models' files change."""

    def __init__(
        self,
        rescanner: Rescanner,
        settings: SettingsSource,
        *,
        interval: float = WATCH_SECONDS,
    ) -> None:
        self.rescanner = rescanner
        self._settings = settings
        self.interval = interval  # seconds between looks
        self._task: asyncio.Task[None] | None = None
        self._first: tuple[dict[str, int], dict[str, object]] | None = None
        self.rescans = 0  # how many changes it rescanned for (tests, the log)

    def _look(self) -> tuple[dict[str, int], dict[str, object]]:
        """What a change shows in: the folders' mtimes and the running models' files."""
        folders = [f.path for f in model_dirs(self._settings().MODEL_DIRS)]
        lifecycle = self.rescanner.lifecycle
        files = {
            path: file_identity(path)
            for st in lifecycle.manager.statuses().values()
            if st.spec is not None and st.state.alive
            for path in filter(None, st.spec.file)
        }
        return folder_signature(folders), files

    @staticmethod
    def _differ(a: tuple[dict, dict], b: tuple[dict, dict]) -> bool:
        """A folder changed, or a running model's file did (a load or an unload is none)."""
        return a[0] != b[0] or any(a[1][p] != b[1][p] for p in a[1].keys() & b[1].keys())

    async def look_first(self) -> None:
        """The look changes are measured from, taken before the catalogue's first scan reads
        the folders: a file that comes between that scan and the watch's start is then a
        change to rescan for, not part of what the watch takes as already read."""
        self._first = await asyncio.get_running_loop().run_in_executor(None, self._look)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="folder-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        first, self._first = self._first, None
        scanned = first if first is not None else await loop.run_in_executor(None, self._look)
        seen = scanned
        while True:
            await asyncio.sleep(self.interval)
            try:
                now = await loop.run_in_executor(None, self._look)
                if self._differ(now, scanned) and not self._differ(now, seen):
                    # changed, and quiet since the last look (a copy under way is not read)
                    log.info("The model folders changed: rescanning")
                    # what the rescan reads is at least this look: a change made while it
                    # runs differs from it and is rescanned at the next quiet look (a look
                    # taken after the rescan would take that change as already read)
                    scanned = now
                    await self.rescanner.rescan()
                    self.rescans += 1
                elif not self._differ(now, scanned):
                    scanned = now  # loads and unloads since: the files to watch now
                seen = now
            except Exception:
                log.exception("Watching the model folders failed")
