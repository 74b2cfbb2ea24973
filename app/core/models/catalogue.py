"""The models the API offers: one per configured profile, with its key, aliases and header."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.core.models.gguf_info import GGUFInfo, InfoCache
from app.core.models.profiles import ModelProfile


@dataclass(frozen=True)
class CatalogueEntry:
    profile: ModelProfile
    info: GGUFInfo | None  # None when the file is missing or not a GGUF

    @property
    def key(self) -> str:
        return self.profile.model_id

    @property
    def aliases(self) -> tuple[str, ...]:
        return self.profile.aliases

    @property
    def model_path(self) -> str:
        return self.profile.model_path

    @property
    def vision(self) -> bool:
        return bool(self.profile.mmproj)

    @property
    def publisher(self) -> str:
        return self.key.split("/", 1)[0] if "/" in self.key else "local"

    @property
    def display_name(self) -> str:
        return (self.info.name if self.info else None) or Path(self.model_path).stem

    @property
    def size_bytes(self) -> int:
        total = self.info.size_bytes if self.info else 0
        if self.profile.mmproj:
            try:
                total += Path(self.profile.mmproj).stat().st_size
            except OSError:
                pass
        return total

    @property
    def max_context_length(self) -> int | None:
        return self.info.context_length if self.info else None


class UnknownModelError(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        listed = ", ".join(known) if known else "none (set VISION_MODEL_GGUF / LLM_MODEL_GGUF)"
        super().__init__(f"Unknown model '{name}'. Known models: {listed}")


class Catalogue:
    """Reads the profiles live; GGUF headers are read once per file version."""

    def __init__(self, profiles: Mapping[str, ModelProfile]) -> None:
        self._profiles = profiles
        self._infos = InfoCache()

    def profiles(self) -> list[ModelProfile]:
        return [p for p in self._profiles.values() if p.configured]

    def entry(self, profile: ModelProfile) -> CatalogueEntry:
        return CatalogueEntry(profile, self._infos.get(profile.model_path))

    def entries(self) -> list[CatalogueEntry]:
        return [self.entry(p) for p in self.profiles()]

    async def entries_async(self) -> list[CatalogueEntry]:
        """``entries()`` with the header reads off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.entries)

    def known_keys(self) -> list[str]:
        return [p.model_id for p in self.profiles()]

    def find(self, name: str | None) -> ModelProfile | None:
        """The profile whose key or alias is ``name`` (exact first, then ignoring case)."""
        if not name:
            return None
        profiles = self.profiles()
        for p in profiles:
            if name == p.model_id or name in p.aliases:
                return p
        low = name.casefold()
        for p in profiles:
            if any(low == a.casefold() for a in p.aliases):
                return p
        return None

    def resolve(self, name: str) -> ModelProfile:
        found = self.find(name)
        if found is None:
            raise UnknownModelError(name, self.known_keys())
        return found
