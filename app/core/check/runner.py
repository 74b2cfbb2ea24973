"""The checks, in order, through the running app's API.

Per model: load it (time, memory), a short chat (tokens/s), an image for a vision model
(answered, its tokens counted), an embedding for an embedding model (dimension), a ranking
for a reranker, then unload it (its process gone, its memory given back). Then FamilyLog's
pair (``pair.py``) as the seed's step 9 lists it: the vision model describes a photo, the
switch to the LLM works, the LLM answers, both are unloaded at the end, each has its log
file.

It never leaves a model loaded that was not loaded before (whatever fails, and when it is
cancelled) and loads again a model that was loaded before and had to make room; it does not
start, and stops, while a FamilyLog run holds a model.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

from app.core.api.client import ApiAnswerError, AppApi
from app.core.check.pair import PairChecks
from app.core.check.reasons import reason_words
from app.core.check.report import FAIL, PAIR, PASS, SKIP, CheckRow, Report, size_words
from app.core.check.step import CHAT, CHAT_TOKENS, PHOTO, StepFailed, StepSkipped

Progress = Callable[[str], None]
_LOG_NAMED = re.compile(r"Read (\S+\.log)\b")  # a failed load's message names its log


class HeldByRunError(RuntimeError):
    """A FamilyLog run holds a model: the check does not run beside it."""


def held_by_run(ps: dict[str, dict[str, Any]]) -> str | None:
    """Why the check must not run now (a FamilyLog run holds a model), else None."""
    held = [key for key, row in ps.items() if row.get("held_by")]
    if not held:
        return None
    return (
        f"a FamilyLog run is using {', '.join(held)}. Run the check again when the run has "
        "finished (see the tray's run status)."
    )


def pid_gone(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


class ModelCheck(PairChecks):
    """One run of the checks; ``run`` returns the report."""

    def __init__(
        self,
        api: AppApi,
        *,
        image: bytes,
        server_log: Callable[[int], Path],
        progress: Progress | None = None,
        unload_wait: float = 30.0,
        gone: Callable[[int | None], bool] = pid_gone,
    ) -> None:
        self.api = api
        self.image_url = "data:image/png;base64," + base64.b64encode(image).decode("ascii")
        self._server_log = server_log
        self._progress = progress or (lambda _: None)
        self._unload_wait = unload_wait
        self._gone = gone
        self.rows: list[CheckRow] = []
        self.before: set[str] = set()  # loaded when the check began
        self.loaded: set[str] = set()  # loaded by the check and not yet unloaded
        self.logs: dict[str, Path] = {}  # the log of each model's server, seen while it ran

    # ── The whole run ─────────────────────────────────────────────────────────
    async def run(self, keys: list[str], pair: tuple[str, str] | None = None) -> Report:
        models = {m["id"]: m for m in await self.api.models()}
        ps = await self.api.ps()
        refused = held_by_run(ps)
        if refused:
            return Report(refused=refused)
        self.before = set(ps)
        self._see(ps)
        try:
            for name in keys:
                key = await self._resolve(name, models)
                if key is None:
                    known = ", ".join(models) or "none"
                    self._row(name, "model", FAIL, f"unknown model (known: {known})")
                    continue
                await self._stop_if_held()
                await self._model(key, models[key].get("type") or "llm")
            if pair is not None:
                await self._stop_if_held()
                await self._pair(*pair)
        except HeldByRunError as e:
            self._row(PAIR, "stopped", FAIL, str(e))
        finally:
            await self._put_back()
        return Report(self.rows)

    async def _resolve(self, name: str, models: dict[str, dict[str, Any]]) -> str | None:
        """The key of ``name`` (a key, or an alias such as the file name); None if unknown."""
        if name in models:
            return name
        try:
            found = await self.api.call(f"/api/v0/models/{quote(name, safe='/')}")
        except ApiAnswerError:
            return None
        return found.get("id") if found.get("id") in models else None

    # ── One model ─────────────────────────────────────────────────────────────
    async def _model(self, key: str, kind: str) -> None:
        if not await self._load_step(key, "load"):
            later = ["chat"] if kind in ("llm", "vlm") else ["embedding"]
            later += ["image"] if kind == "vlm" else []
            for check in [*later, "unload"]:
                self._row(key, check, SKIP, "not run: the model did not load")
            return
        if kind in ("llm", "vlm"):
            await self._step(key, "chat", self._chat(key))
        if kind == "vlm":
            await self._step(key, "image", self._image(key))
        if kind == "embeddings":
            await self._step(key, "embedding", self._embedding(key))
        if key in self.before:
            self._row(key, "unload", SKIP, "left loaded, as it was before the check")
        else:
            await self._step(key, "unload", self._unload(key))

    async def _load_step(self, subject: str, check: str, key: str | None = None) -> bool:
        """Load ``key`` (default: ``subject``) unless it is loaded; one row; True when it is."""
        key = key or subject
        ps = await self.api.ps()
        if key in ps:
            row = ps[key]
            how = "loaded before the check" if key in self.before else "already loaded"
            memory = size_words(row.get("memory_bytes"), row.get("memory_kind"))
            self._row(subject, check, PASS, f"{how}: load time not measured; {memory}")
            self._see(ps)
            return True
        self._progress(f"{key}: loading")
        try:
            took = await self.api.load(key)
        except ApiAnswerError as e:
            self._row(subject, check, FAIL, reason_words(e.message))
            if found := _LOG_NAMED.search(e.message):  # the log of the start that failed
                self.logs[key] = Path(found[1])
            return False
        self.loaded.add(key)
        ps = await self.api.ps()
        self._see(ps)
        row = ps.get(key) or {}
        memory = size_words(row.get("memory_bytes"), row.get("memory_kind"))
        self._row(subject, check, PASS, f"{took:.1f} s, {memory}")
        return True

    async def _chat(self, key: str) -> str:
        self._progress(f"{key}: a short chat")
        answer = await self.api.chat(key, CHAT, CHAT_TOKENS)
        tokens = int((answer.get("usage") or {}).get("completion_tokens") or 0)
        if tokens <= 0:
            raise StepFailed("no answer: the model generated no tokens")
        speed = (answer.get("timings") or {}).get("predicted_per_second")
        rate = f"{speed:,.1f} tokens/s" if speed else "speed not reported"
        return f"{rate} ({tokens} tokens)"

    async def _image(self, key: str) -> str:
        self._progress(f"{key}: an image")
        text_part = {"type": "text", "text": PHOTO}
        alone = await self.api.chat(key, [text_part], 1)
        image_part = {"type": "image_url", "image_url": {"url": self.image_url}}
        answer = await self.api.chat(key, [text_part, image_part], CHAT_TOKENS)
        prompt = int((answer.get("usage") or {}).get("prompt_tokens") or 0)
        image_tokens = prompt - int((alone.get("usage") or {}).get("prompt_tokens") or 0)
        if image_tokens <= 0:
            raise StepFailed("the image did not reach the model: no image tokens counted")
        tokens = int((answer.get("usage") or {}).get("completion_tokens") or 0)
        if tokens <= 0:
            raise StepFailed(f"the image was {image_tokens} tokens, but no answer came")
        return f"answered ({tokens} tokens); the image was {image_tokens} tokens"

    async def _embedding(self, key: str) -> str:
        self._progress(f"{key}: an embedding")
        try:
            answer = await self.api.call("/v1/embeddings", {"model": key, "input": PHOTO})
        except ApiAnswerError as e:
            if e.code != "model_type_mismatch":
                raise
            return await self._rerank(key)  # a reranker: it ranks instead
        vector = ((answer.get("data") or [{}])[0] or {}).get("embedding") or []
        if not vector:
            raise StepFailed("no embedding came back")
        return f"{len(vector)} dimensions"

    async def _rerank(self, key: str) -> str:
        docs = ["a cat asleep on the sofa", "the price of coffee"]
        answer = await self.api.call(
            "/v1/rerank", {"model": key, "query": "a sleeping cat", "documents": docs}
        )
        ranked = answer.get("results") or []
        if len(ranked) != len(docs):
            raise StepFailed(f"ranked {len(ranked)} of {len(docs)} documents")
        return f"a reranker: ranked {len(docs)} documents"

    async def _unload(self, key: str) -> str:
        self._progress(f"{key}: unloading")
        ps = await self.api.ps()
        row = ps.get(key) or {}
        await self.api.unload(key)
        self.loaded.discard(key)
        if not await self._ended(key, row.get("pid")):
            raise StepFailed(
                f"its process was still running {self._unload_wait:g} s after unloading"
            )
        return f"{size_words(row.get('memory_bytes'), row.get('memory_kind'))} given back (its process ended)"

    async def _ended(self, key: str, pid: int | None) -> bool:
        deadline = time.monotonic() + self._unload_wait
        while True:
            if key not in await self.api.ps() and self._gone(pid):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)

    # ── Helpers ───────────────────────────────────────────────────────────────
    def _row(self, subject: str, check: str, result: str, detail: str) -> None:
        self.rows.append(CheckRow(subject, check, result, detail))

    async def _step(self, subject: str, check: str, work) -> bool:
        """Run one check (a coroutine returning its detail); a row either way."""
        try:
            detail = await work
        except StepFailed as e:
            self._row(subject, check, FAIL, str(e))
            return False
        except StepSkipped as e:
            self._row(subject, check, SKIP, str(e))
            return False
        except ApiAnswerError as e:
            self._row(subject, check, FAIL, reason_words(e.message))
            return False
        self._row(subject, check, PASS, detail)
        return True

    def _see(self, ps: dict[str, dict[str, Any]]) -> None:
        """Remember the log file of every model's server while it runs."""
        for key, row in ps.items():
            if row.get("port"):
                self.logs[key] = self._server_log(int(row["port"]))

    async def _stop_if_held(self) -> None:
        why = held_by_run(await self.api.ps())
        if why:
            raise HeldByRunError(f"stopped: {why}")

    async def _put_back(self) -> None:
        """Unload what the check loaded and load again what had to make room."""
        ps = await self.api.ps()
        for key in sorted(self.loaded - self.before):
            if key in ps:
                try:
                    await self.api.unload(key)
                except ApiAnswerError as e:
                    self._row(key, "put back", FAIL, f"could not unload it: {e.message}")
        self.loaded.clear()
        ps = await self.api.ps()
        for key in sorted(self.before - set(ps)):
            self._progress(f"{key}: loading it again, as before the check")
            try:
                await self.api.load(key)
            except ApiAnswerError as e:
                self._row(
                    key, "put back", FAIL, f"could not load it again: {reason_words(e.message)}"
                )
            else:
                self._row(key, "put back", PASS, "loaded again, as it was before the check")
