"""The saved slots on disk: one folder in the app home (llama-server's ``--slot-save-path``),
one file per saved slot and an index (``index.json``) of what each holds and when it was
last used, kept under a byte budget, least recently used deleted first. Blocking file work:
the keeper calls it off the event loop."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from app.atomic import write_atomic

log = logging.getLogger(__name__)

SUFFIX = ".slot"
INDEX = "index.json"
STRAY_AGE = 600.0  # a file not in the index this old is a save that was cut short


@dataclass(frozen=True)
class SavedSlot:
    name: str  # the file's name in the folder
    fingerprint: str  # what it may be restored into (``fingerprint.fingerprint``)
    model: str  # the model file, for people reading the index and the log
    tokens: int  # tokens of context it holds
    size: int  # bytes on disk
    saved_at: float
    used_at: float  # saved or last restored (least recently used deleted first)
    save_ms: float = 0.0


class SlotStore:
    """``budget()``: the bytes the files may take (asked at each change)."""

    def __init__(self, folder: Path, budget: Callable[[], int]) -> None:
        self.folder = folder
        self._budget = budget
        self._lock = threading.Lock()  # ports save and restore at once (the quit: all)
        self._entries: dict[str, SavedSlot] | None = None

    @property
    def loaded(self) -> bool:
        """True once the index was read: reading it no longer touches the disk."""
        return self._entries is not None

    @property
    def index_path(self) -> Path:
        return self.folder / INDEX

    def ensure_folder(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def new_name(self, fingerprint: str, slot_id: int) -> str:
        return f"{fingerprint[:12]}-{slot_id}-{uuid.uuid4().hex[:8]}{SUFFIX}"

    # ── Reading ────────────────────────────────────────────────────────────────
    def entries(self) -> list[SavedSlot]:
        with self._lock:
            return list(self._load().values())

    def matching(self, fingerprint: str) -> list[SavedSlot]:
        """The saved slots that may be restored into a server with ``fingerprint``, most
        recently used first."""
        with self._lock:
            found = [e for e in self._load().values() if e.fingerprint == fingerprint]
        return sorted(found, key=lambda e: e.used_at, reverse=True)

    def budget_bytes(self) -> int:
        """The bytes the files may take now (asked at each change)."""
        return max(0, int(self._budget()))

    def used_bytes(self) -> int:
        return sum(e.size for e in self.entries())

    # ── Changing ───────────────────────────────────────────────────────────────
    def add(self, entry: SavedSlot, keep_per_fingerprint: int | None = None) -> list[SavedSlot]:
        """Index a file llama-server has written; then delete, least recently used first,
        what is over ``keep_per_fingerprint`` files of its fingerprint or over the budget.
        Returns what was deleted (the new file too, when it alone is over the budget)."""
        with self._lock:
            entries = self._load()
            entries[entry.name] = entry
            removed = []
            if keep_per_fingerprint is not None:
                same = sorted(
                    (e for e in entries.values() if e.fingerprint == entry.fingerprint),
                    key=lambda e: e.used_at,
                    reverse=True,
                )
                removed += same[keep_per_fingerprint:]
            for e in removed:
                del entries[e.name]
            removed += self._over_budget(entries)
            self._delete_files(removed)
            self._save(entries)
            return removed

    def touch(self, name: str, now: float | None = None) -> None:
        """``name`` was just restored: the last to be deleted."""
        with self._lock:
            entries = self._load()
            e = entries.get(name)
            if e is not None:
                entries[name] = SavedSlot(**{**asdict(e), "used_at": now or time.time()})
                self._save(entries)

    def remove(self, name: str) -> None:
        with self._lock:
            entries = self._load()
            e = entries.pop(name, None)
            self._delete_files([e] if e else [SavedSlot(name, "", "", 0, 0, 0, 0)])
            self._save(entries)

    def discard_file(self, name: str) -> None:
        """Delete a file that was written but is not worth keeping (not indexed)."""
        self._delete_files([SavedSlot(name, "", "", 0, 0, 0, 0)])

    def prune(self) -> list[SavedSlot]:
        """Keep to the budget (a smaller ``SLOT_CACHE_MB``); delete strays."""
        with self._lock:
            entries = self._load()
            removed = self._over_budget(entries)
            self._delete_files(removed)
            self._save(entries)
            return removed

    # ── Internals (under the lock) ─────────────────────────────────────────────
    def _over_budget(self, entries: dict[str, SavedSlot]) -> list[SavedSlot]:
        budget = self.budget_bytes()
        total = sum(e.size for e in entries.values())
        removed = []
        for e in sorted(entries.values(), key=lambda e: e.used_at):
            if total <= budget:
                break
            del entries[e.name]
            total -= e.size
            removed.append(e)
        return removed

    def _delete_files(self, gone: list[SavedSlot]) -> None:
        for e in gone:
            try:
                (self.folder / e.name).unlink(missing_ok=True)
            except OSError as err:
                log.warning("Cannot delete the saved slot %s: %s", self.folder / e.name, err)

    def _load(self) -> dict[str, SavedSlot]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, SavedSlot] = {}
        try:
            raw = json.loads(self.index_path.read_text("utf-8"))
            for item in raw.get("slots", []):
                e = SavedSlot(**item)
                if (self.folder / e.name).is_file():
                    entries[e.name] = e
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError) as e:
            log.warning("Ignoring the unreadable slot index %s: %s", self.index_path, e)
        self._entries = entries
        self._delete_strays(entries)
        return entries

    def _delete_strays(self, entries: dict[str, SavedSlot]) -> None:
        """Files no index entry names (a save cut short, an index lost), once old enough
        that no server can still be writing them."""
        try:
            files = list(self.folder.glob(f"*{SUFFIX}"))
        except OSError:
            return
        now = time.time()
        for f in files:
            try:
                if f.name not in entries and now - f.stat().st_mtime > STRAY_AGE:
                    f.unlink()
            except OSError:
                continue

    def _save(self, entries: dict[str, SavedSlot]) -> None:
        self._entries = entries
        data = {"slots": [asdict(e) for e in sorted(entries.values(), key=lambda e: e.name)]}
        try:
            write_atomic(self.index_path, json.dumps(data, indent=1), durable=False)
        except OSError as e:
            log.warning("Cannot write the slot index %s: %s", self.index_path, e)
