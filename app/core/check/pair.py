"""FamilyLog's pair, the seed's step 9 in its order: the checks ``ModelCheck`` runs last."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from app.core.check.report import PAIR, SKIP, size_words
from app.core.check.step import CHAT, CHAT_TOKENS, PHOTO, StepFailed, StepSkipped
from app.core.servers.server_log import START_MARK


def _text(answer: dict[str, Any]) -> str:
    msg = ((answer.get("choices") or [{}])[0] or {}).get("message") or {}
    return (msg.get("content") or msg.get("reasoning_content") or "").strip()


def _quote(text: str, n: int = 48) -> str:
    one = " ".join(text.split())
    return "“" + (one if len(one) <= n else one[: n - 1] + "…") + "”"


class PairChecks:
    """The pair's checks, a part of ``ModelCheck`` (its API, rows, loads and logs)."""

    # ── FamilyLog's pair: the seed's step 9, in its order ──────────────────────
    async def _pair(self, vision: str, llm: str) -> None:
        self._progress("FamilyLog: the vision model describes a photo")
        if await self._load_step(PAIR, f"load the vision model ({vision})", vision):
            await self._step(PAIR, "the vision model describes a photo", self._describe(vision))
        else:
            self._row(PAIR, "the vision model describes a photo", SKIP, "not run: it did not load")
        self._progress("FamilyLog: the switch to the LLM")
        switched = await self._step(PAIR, "the switch to the LLM works", self._switch(vision, llm))
        if switched:
            await self._step(PAIR, "the LLM answers", self._answer(llm))
        else:
            self._row(PAIR, "the LLM answers", SKIP, "not run: the LLM did not load")
        await self._step(PAIR, "both are unloaded at the end", self._both_unloaded(vision, llm))
        await self._step(PAIR, "each has its log file", self._log_files(vision, llm))

    async def _describe(self, key: str) -> str:
        content = [
            {"type": "text", "text": PHOTO},
            {"type": "image_url", "image_url": {"url": self.image_url}},
        ]
        t0 = time.monotonic()
        text = _text(await self.api.chat(key, content, CHAT_TOKENS))
        if not text:
            raise StepFailed("the answer was empty")
        return f"answered in {time.monotonic() - t0:.1f} s: {_quote(text)}"

    async def _switch(self, vision: str, llm: str) -> str:
        ps = await self.api.ps()
        if llm in ps:
            return f"{llm} was already loaded"
        vision_was_loaded = vision in ps
        took = await self.api.load(llm)
        self.loaded.add(llm)
        ps = await self.api.ps()
        self._see(ps)
        if not vision_was_loaded:
            room = f"{vision} was not loaded"
        elif vision in ps:
            room = "both stay loaded"
        else:
            room = f"{vision} was unloaded to make room"
        memory = size_words(
            (ps.get(llm) or {}).get("memory_bytes"), (ps.get(llm) or {}).get("memory_kind")
        )
        return f"{llm} loaded in {took:.1f} s ({memory}); {room}"

    async def _answer(self, key: str) -> str:
        answer = await self.api.chat(key, CHAT, CHAT_TOKENS)
        text = _text(answer)
        if not text:
            raise StepFailed("the answer was empty")
        return _quote(text)

    async def _both_unloaded(self, vision: str, llm: str) -> str:
        kept = []
        for key in dict.fromkeys((vision, llm)):
            if key in self.before:
                kept.append(key)
                continue
            ps = await self.api.ps()
            if key in ps:
                pid = ps[key].get("pid")
                await self.api.unload(key)
                self.loaded.discard(key)
                if not await self._ended(key, pid):
                    raise StepFailed(
                        f"{key} was still running {self._unload_wait:g} s after unloading"
                    )
        if kept:
            return f"unloaded; {', '.join(kept)} left loaded, as before the check"
        return "neither is loaded now"

    async def _log_files(self, vision: str, llm: str) -> str:
        paths: dict[str, Path] = {}
        never = []
        for role, key in (("vision", vision), ("LLM", llm)):
            path = self.logs.get(key)
            if path is None:  # it never started (a missing file): there is no log to have
                never.append(f"the {role} model never started")
                continue
            try:
                ok = START_MARK in path.read_text(errors="replace")
            except OSError:
                ok = False
            if not ok:
                raise StepFailed(f"no log file for the {role} model: {path} is missing")
            paths[role] = path
        if not paths:
            raise StepSkipped("not run: neither model started")
        logs = list(dict.fromkeys(paths.values()))
        if len(paths) == 2 and len(logs) == 1:
            found = f"both in {logs[0]} (one port, switched)"
        else:
            found = "; ".join(f"{role}: {path}" for role, path in paths.items())
        return "; ".join([found, *never])
