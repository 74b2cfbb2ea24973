"""The check's one way to the running app: its API, as FamilyLog and every other client use it
(LM Studio's load/unload, the OpenAI routes, and ``GET /api/v0/ps`` for memory and holders)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp


class AppNotRunningError(RuntimeError):
    """Nothing answers at the API's address."""


class ApiAnswerError(RuntimeError):
    """The app answered with an error; ``message`` is its own words."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class AppApi:
    """An open connection to the app's API at ``base`` (``http://host:port``)."""

    def __init__(self, base: str, key: str = "", *, timeout: float = 900.0) -> None:
        self.base = base.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AppApi:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout, sock_connect=10),
            trust_env=False,  # loopback: never through a proxy
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` (or POST ``body`` to it); the JSON answer, or ``ApiAnswerError``."""
        assert self._session is not None, "use AppApi as an async context manager"
        url = self.base + path
        try:
            if body is None:
                request = self._session.get(url, headers=self._headers)
            else:
                request = self._session.post(url, json=body, headers=self._headers)
            async with request as r:
                text = await r.text()
                status = r.status
        except aiohttp.ClientConnectionError as e:
            raise AppNotRunningError(f"nothing answers at {self.base}: {e}") from None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if status != 200 or not isinstance(data, dict):
            err = data.get("error") if isinstance(data, dict) else None
            message = err.get("message") if isinstance(err, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            raise ApiAnswerError(status, message or f"HTTP {status}: {text[:300]}", code)
        return data

    async def models(self) -> list[dict[str, Any]]:
        """``/api/v0/models``: every model with its type (llm, vlm, embeddings) and state."""
        return list((await self.call("/api/v0/models")).get("data") or [])

    async def ps(self) -> dict[str, dict[str, Any]]:
        """``/api/v0/ps`` by key: port, PID, memory, who holds it."""
        return {row["key"]: row for row in (await self.call("/api/v0/ps")).get("models") or []}

    async def load(self, key: str) -> float:
        """Load ``key`` (waits until it is); the seconds the app reports it took."""
        answer = await self.call("/api/v1/models/load", {"model": key})
        return float(answer.get("load_time_seconds") or 0.0)

    async def unload(self, key: str) -> None:
        await self.call("/api/v1/models/unload", {"instance_id": key})

    async def chat(self, key: str, content: Any, max_tokens: int) -> dict[str, Any]:
        body = {
            "model": key,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        return await self.call("/v1/chat/completions", body)
