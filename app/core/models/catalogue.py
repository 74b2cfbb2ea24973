"""The catalogue: FamilyLog's two role models from the settings, plus every GGUF found under
``MODEL_DIRS``, each under one key that clients load and address it by."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from app.config import Settings, SettingsSource
from app.core.discovery.folders import model_dirs
from app.core.discovery.gguf_info import InfoCache
from app.core.discovery.scan import FoundModel, ModelScanner, unique_key
from app.core.events import Listeners
from app.core.models.entry import LLM, VISION, ModelEntry, aliases_for

log = logging.getLogger(__name__)

Listener = Callable[[], None]


class UnknownModelError(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        listed = ", ".join(known) if known else "none (set VISION_MODEL_GGUF / LLM_MODEL_GGUF)"
        said = name if len(name) <= 80 else f"{name[:80]}… ({len(name):,} characters)"
        super().__init__(f"Unknown model '{said}'. Known models: {listed}")


def role_entries(s: Settings, infos: InfoCache | None = None) -> dict[str, ModelEntry]:
    """FamilyLog's vision and LLM models as the settings name them (configured or not)."""

    def entry(role: str, path: str, mmproj: str, key: str, port: int, at_start: bool):
        key = key or (Path(path).stem if path else "")
        info = infos.get(path) if infos is not None and path else None
        return ModelEntry(
            key=key,
            path=path,
            mmproj=mmproj or None,
            aliases=aliases_for(key, path),
            role=role,
            port=port,
            type=info.model_type if info else "llm",
            info=info,
            quant=info.quantization if info else None,
            load_at_start=at_start,
        )

    return {
        VISION: entry(
            VISION,
            s.VISION_MODEL_GGUF,
            s.VISION_MMPROJ,
            s.VISION_MODEL_ID,
            s.LLAMA_VISION_PORT,
            s.VISION_LOAD_AT_START,
        ),
        LLM: entry(
            LLM, s.LLM_MODEL_GGUF, "", s.LLM_MODEL_ID, s.LLAMA_LLM_PORT, s.LLM_LOAD_AT_START
        ),
    }


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


class Catalogue:
    """Every model the app can load. Roles follow the settings live; the folders are read by
    ``rescan`` (at start, on request, and when the folder watch sees a change), headers only,
    cached by path, size and mtime.

    A model that runs stays listed under its key while it runs when its file is gone (moved
    or deleted): so it can still be named, served and unloaded
    by that key; the lifecycle says "file moved or deleted". It goes from the list with the
    first change after it stopped (``live_files``: the files of the running servers)."""

    def __init__(
        self,
        settings: SettingsSource,
        more_names: Callable[[ModelEntry], tuple[str, ...]] | None = None,
    ) -> None:
        """``more_names(entry)``: other names clients may use for it (its preset's ``alias``)."""
        self._settings = settings
        self._more_names = more_names
        # the model files of the running servers (AppCore sets it): kept listed while they run
        self.live_files: Callable[[], set[tuple[str, str | None]]] = set
        self.kept: list[ModelEntry] = []  # running models the last refresh no longer found
        self._infos = InfoCache()  # the roles' headers and the scans' (one cache)
        self._scanner = ModelScanner(self._infos)
        self._found: list[FoundModel] = []  # the last scan's models
        self.problems: list[str] = []  # the last scan's unreadable files, one line each
        self._roles: dict[str, ModelEntry] = {}
        self._entries: list[ModelEntry] = []
        self._index: dict[str, ModelEntry] = {}
        self._folded: dict[str, ModelEntry] = {}
        self._listeners: Listeners[[]] = Listeners("catalogue changes")
        self.refresh()

    # ── Reading ────────────────────────────────────────────────────────────────
    def entries(self) -> list[ModelEntry]:
        """The configured roles first, then the models found in the folders, by key."""
        return list(self._entries)

    def roles(self) -> dict[str, ModelEntry]:
        """Both roles, also one with no file set (``configured`` False)."""
        return dict(self._roles)

    def role(self, name: str) -> ModelEntry:
        return self._roles[name]

    def known_keys(self) -> list[str]:
        return [e.key for e in self._entries]

    def find(self, name: str | None) -> ModelEntry | None:
        """The model whose key or alias is ``name`` (exact first, then ignoring case)."""
        if not name:
            return None
        return self._index.get(name) or self._folded.get(name.casefold())

    def resolve(self, name: str) -> ModelEntry:
        found = self.find(name)
        if found is None:
            raise UnknownModelError(name, self.known_keys())
        return found

    def by_file(self, path: str, mmproj: str | None = None) -> ModelEntry | None:
        """The entry for a running server's model file (its projector decides between a
        role with one and a listing without)."""
        matches = [e for e in self._entries if e.path == path]
        for e in matches:
            if (e.mmproj or None) == (mmproj or None):
                return e
        return matches[0] if matches else None

    def subscribe(self, cb: Listener) -> Callable[[], None]:
        """``cb()`` after every change of the entries (settings applied, folders rescanned)."""
        return self._listeners.add(cb)

    # ── Changing ───────────────────────────────────────────────────────────────
    def read_role_headers(self, s: Settings) -> None:
        """Read the headers of the role files ``s`` names into the cache (blocking: off the
        event loop), so ``refresh`` with ``s`` in force reads none."""
        for path in (s.VISION_MODEL_GGUF, s.LLM_MODEL_GGUF):
            if path:
                self._infos.get(path)

    def refresh(self) -> None:
        """Rebuild the entries from the settings in force and the last scan."""
        old = self._entries
        self._roles = role_entries(self._settings(), self._infos)
        roles = [e for e in self._roles.values() if e.configured]
        used = {e.key.casefold() for e in roles}
        entries = list(roles)
        # running models no longer found keep their place and their key (first come)
        found_files = {(str(m.path), str(m.mmproj) if m.mmproj else None) for m in self._found}
        live = self.live_files()
        kept = [
            e
            for e in old
            if e.file in live
            and e.file not in found_files
            and not Path(e.path).exists()  # gone (moved, deleted); a file still there is not
            and not any(e.file == r.file for r in roles)
            and e.key.casefold() not in used
        ]
        for e in kept:
            used.add(e.key.casefold())
        entries += kept
        for m in self._found:
            if any(_same_file(str(m.path), r.path) for r in roles):
                continue  # a role's file is listed once, under the role's key
            key = unique_key(m.key, used)
            entries.append(
                ModelEntry(
                    key=key,
                    path=str(m.path),
                    mmproj=str(m.mmproj) if m.mmproj else None,
                    aliases=tuple(dict.fromkeys((key, *m.aliases))),
                    type=m.type,
                    info=m.info,
                    quant=m.quant,
                )
            )
        if self._more_names is not None:
            entries = [self._with_names(e) for e in entries]
        index: dict[str, ModelEntry] = {}
        folded: dict[str, ModelEntry] = {}
        for e in entries:
            index.setdefault(e.key, e)
        for e in entries:
            for a in e.aliases:
                index.setdefault(a, e)
                folded.setdefault(a.casefold(), e)
        self._entries, self._index, self._folded = entries, index, folded
        if [e.key for e in kept] != [e.key for e in self.kept]:
            log.info("Kept listed while they run: %s", [e.key for e in kept])
        self.kept = kept
        self._listeners.emit()

    def _with_names(self, entry: ModelEntry) -> ModelEntry:
        assert self._more_names is not None
        more = [n for n in self._more_names(entry) if n not in entry.aliases]
        return replace(entry, aliases=(*entry.aliases, *more)) if more else entry

    def scan(self) -> list[str]:
        """Walk ``MODEL_DIRS`` (blocking: call it off the event loop); returns the problems."""
        dirs = model_dirs(self._settings().MODEL_DIRS)
        started = time.monotonic()
        result = self._scanner.scan(dirs)
        self._found, self.problems = result.models, result.problems
        log.info(
            "Found %d models in %s in %.2f s",
            len(result.models),
            ", ".join(str(f.path) for f in dirs) or "no folders",
            time.monotonic() - started,
        )
        return result.problems

    async def rescan(self) -> list[str]:
        """``scan`` off the loop, then the entries rebuilt on the loop."""
        problems = await asyncio.get_running_loop().run_in_executor(None, self.scan)
        self.refresh()
        return problems
