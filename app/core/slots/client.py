"""llama-server's slot endpoints, with the server's per-start key and path prefix: ``GET /slots``
and ``POST /slots/{id}?action=save|restore`` (a file name in its ``--slot-save-path``)."""

from __future__ import annotations

from typing import Any

import httpx

from app.core.servers.health import loopback_client
from app.core.servers.keys import auth_headers, server_url
from app.core.servers.states import ServerStatus


class SlotError(RuntimeError):
    """llama-server did not do what was asked; the message says what it answered."""


async def _call(status: ServerStatus, method: str, path: str, timeout: float, **kw) -> Any:
    try:
        async with loopback_client(timeout=timeout, headers=auth_headers(status)) as c:
            r = await c.request(method, server_url(status.port, path, status), **kw)
    except httpx.TimeoutException:
        raise TimeoutError(f"no answer from {path} within {timeout:.2f} s") from None
    except httpx.HTTPError as e:
        raise SlotError(f"{path}: {e}") from None
    try:
        data = r.json()
    except ValueError:
        data = None
    if r.status_code != 200:
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        raise SlotError(f"{path} answered {r.status_code}: {message or r.text[:200]}")
    return data


async def list_slots(status: ServerStatus, timeout: float) -> list[dict[str, Any]]:
    data = await _call(status, "GET", "/slots", timeout)
    if not isinstance(data, list):
        raise SlotError(f"/slots answered {type(data).__name__}, not a list")
    return [s for s in data if isinstance(s, dict)]


def slot_tokens(slot: dict[str, Any]) -> int:
    """The tokens of context a slot of ``GET /slots`` holds since its last task (its prompt
    and what it generated; 0 when it has had no task since the start or a restore)."""
    if slot.get("id_task") is None:
        return 0
    prompt = slot.get("n_prompt_tokens") or 0
    decoded = 0
    for nt in slot.get("next_token") or []:
        if isinstance(nt, dict):
            decoded = max(decoded, int(nt.get("n_decoded") or 0))
    return int(prompt) + decoded


async def save(status: ServerStatus, slot_id: int, name: str, timeout: float) -> dict[str, Any]:
    """``{"n_saved": tokens, "n_written": bytes, "timings": {"save_ms": ...}}``."""
    return await _call(
        status, "POST", f"/slots/{slot_id}?action=save", timeout, json={"filename": name}
    )


async def restore(status: ServerStatus, slot_id: int, name: str, timeout: float) -> dict[str, Any]:
    """``{"n_restored": tokens, "n_read": bytes, "timings": {"restore_ms": ...}}``."""
    return await _call(
        status, "POST", f"/slots/{slot_id}?action=restore", timeout, json={"filename": name}
    )
