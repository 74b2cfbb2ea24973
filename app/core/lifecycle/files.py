"""Reading the model folders again (the tray's button, ``POST /api/v0/models/rescan``,
``familylog-tray --rescan``, the folder watch): what came, what went, and what became of the
files of the models that run, told to the user once each."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.notices import Level, Notice, NoticeBus
from app.core.servers.states import FILE_GONE

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
