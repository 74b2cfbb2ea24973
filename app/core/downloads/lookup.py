"""The hub, off the loop: search, a repository's files, the model a name means, its fit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.config import SettingsSource
from app.core.discovery.gguf_header import GgufHeader
from app.core.downloads.files import RemoteModel, RepoFiles
from app.core.downloads.fit import Fit, judge, need_for
from app.core.downloads.refs import HubError, ModelRef, RepoHit
from app.core.downloads.threads import in_thread
from app.core.lifecycle.placement import Free

if TYPE_CHECKING:
    from app.core.downloads.hub import HubClient


class HubLookup:
    """What the downloads service asks the hub (in threads), with the headers it read."""

    def __init__(
        self,
        settings: SettingsSource,
        hub: HubClient | None = None,
        free_memory: Callable[[], Free] | None = None,
        reclaimable: Callable[[], int] | None = None,
    ) -> None:
        self._settings = settings
        self._hub = hub
        self._free_memory = free_memory
        self._reclaimable = reclaimable
        self._headers: dict[tuple[str, str, str], GgufHeader] = {}

    @property
    def hub(self) -> HubClient:
        """The hub client, made (and ``huggingface_hub`` imported: seconds) on first use."""
        if self._hub is None:
            from app.core.downloads.hub import HubClient

            self._hub = HubClient(lambda: self._settings().HF_TOKEN.get_secret_value())
        return self._hub

    def call(self, method: str, *args: Any) -> asyncio.Future[Any]:
        """``self.hub.<method>(*args)`` in a thread (where the library is imported too)."""
        return in_thread(lambda: getattr(self.hub, method)(*args))

    async def search(self, query: str, limit: int = 40) -> list[RepoHit]:
        return await self.call("search", query, limit)

    async def repo_files(self, repo: str) -> RepoFiles:
        return await self.call("repo_files", repo)

    async def find(self, ref: ModelRef) -> tuple[RepoFiles, RemoteModel]:
        """The repository and the model ``ref`` names. LM Studio names models by catalogue
        ids (``qwen/qwen3-4b``); when such a name is no GGUF repository, its
        ``-GGUF`` and ``lmstudio-community/…-GGUF`` forms are tried too."""
        publisher, name = ref.repo.split("/", 1)
        tries = [ref.repo]
        if not name.lower().endswith("-gguf"):
            tries += [f"{ref.repo}-GGUF", f"lmstudio-community/{name}-GGUF"]
        first: HubError | None = None
        for repo in tries:
            try:
                files = await self.repo_files(repo)
            except HubError as e:
                if e.kind != "not_found":
                    raise
                first = first or e
                continue
            if not files.models:
                first = first or HubError(f"{repo} has no GGUF model files.", "not_found", 404)
                continue
            try:
                return files, files.pick(file=ref.file, quant=ref.quant)
            except LookupError as e:
                raise HubError(str(e), "missing_file", 404) from None
        assert first is not None
        raise first

    async def header(self, files: RepoFiles, model: RemoteModel) -> GgufHeader:
        """The header of ``model``'s family, read once per repository commit."""
        key = (files.repo, files.commit, model.family)
        if key not in self._headers:
            self._headers[key] = await self.call(
                "read_header", files.repo, files.commit, model.files[0].path
            )
        return self._headers[key]

    async def fit(self, files: RepoFiles, model: RemoteModel) -> Fit:
        """Whether ``model`` fits this machine at the configured context (its header read
        from the hub, its beginning only)."""
        header = await self.header(files, model)
        ctx = self._settings().LLAMA_CTX_SIZE
        loop = asyncio.get_running_loop()
        free = await loop.run_in_executor(None, self.free_memory_now)
        reclaim = self._reclaimable() if self._reclaimable else 0
        need, context = need_for(model, header, ctx)
        return judge(need, free, reclaim, context)

    def free_memory_now(self) -> Free:
        """Free GPU memory (or RAM) now, as placement measures it (blocking)."""
        if self._free_memory is not None:
            return self._free_memory()
        from app.core.lifecycle.memory import free_memory

        return free_memory(self._settings(), None)
