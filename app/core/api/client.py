"""The one client of the app's own API (``API_HOST:API_PORT``, with ``API_KEY`` when one is
set), as FamilyLog and every other client use it: LM Studio's load/unload, the OpenAI routes,
``GET /api/v0/ps`` for memory and holders.

One address, one key header, one reading of answers and one "nothing answers" error, over
two transports: ``call`` for the command line (``--ps``, ``--load``/``--unload`` without a
tray, ``--download``, ``--rescan``, a forwarded ``--process-now``) on the standard library,
so a command starts quickly (aiohttp alone takes longer to import than the rest of
``--ps``); ``AppApi`` for the check and its window on aiohttp, whose requests a cancel (Ctrl+C,
the window's Stop) cuts off at once.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.core.servers.address import client_url

if TYPE_CHECKING:
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


def app_url(s: Settings) -> str:
    """``http://host:port`` of the app's API as a client on this machine reaches it."""
    return client_url(s.API_HOST, s.API_PORT)


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _parsed(text: str) -> Any:
    """The answer as JSON, or its text when it is none."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def error_message(answer: dict) -> str:
    """The message of an API error answer (``{"error": {"message": ...}}``)."""
    err = answer.get("error")
    return err.get("message", "") if isinstance(err, dict) else str(answer)[:300]


class AppApi:
    """An open connection to the app's API at ``base`` (``http://host:port``)."""

    def __init__(self, base: str, key: str = "", *, timeout: float = 900.0) -> None:
        self.base = base.rstrip("/")
        self._headers = _headers(key)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def of(cls, s: Settings, *, base: str | None = None, timeout: float = 900.0) -> AppApi:
        """The app the settings name (``base``: the address the running app published)."""
        return cls(base or app_url(s), s.API_KEY.get_secret_value(), timeout=timeout)

    async def __aenter__(self) -> AppApi:
        import aiohttp  # here: the command line's ``call`` does without it

        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout, sock_connect=10),
            trust_env=False,  # loopback: never through a proxy
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """GET ``path`` (or POST ``body`` to it): the status and the answer, parsed when it
        is JSON (else its text), whatever the status; ``AppNotRunningError`` when nothing
        answers."""
        import aiohttp

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
        except aiohttp.ClientError as e:  # refused, reset, cut off
            raise AppNotRunningError(f"nothing answers at {self.base}: {e}") from None
        return status, _parsed(text)

    async def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` (or POST ``body`` to it); the JSON answer, or ``ApiAnswerError``."""
        status, data = await self.request(path, body)
        if status != 200 or not isinstance(data, dict):
            err = data.get("error") if isinstance(data, dict) else None
            message = err.get("message") if isinstance(err, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            text = data if isinstance(data, str) else json.dumps(data)
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


def call(
    s: Settings,
    path: str,
    body: dict | None = None,
    timeout: float = 5.0,
    *,
    base: str | None = None,
) -> tuple[int, dict]:
    """For the command line: one GET (or POST ``body``) on the app's API, ``(status, JSON
    answer)`` whatever the status (``{}`` when the answer is no JSON object);
    ``AppNotRunningError`` when nothing answers (within ``timeout`` seconds). ``base``: the
    address the running app published (default: the settings' ``API_HOST:API_PORT``)."""
    url = (base or app_url(s)) + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=_headers(s.API_KEY.get_secret_value()))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        try:
            with opener.open(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise AppNotRunningError(f"nothing answers at {url}: {getattr(e, 'reason', e)}") from None
    answer = _parsed(raw.decode("utf-8", "replace"))
    return status, answer if isinstance(answer, dict) else {}
