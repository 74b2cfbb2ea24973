"""The two load channels of the ``llm`` and ``embedding`` namespaces, through the lifecycle:
``loadModel`` (``load_new_instance``, ``lms load``) and ``getOrLoad`` (``.model(key)``).

Both send progress while the load runs (an estimate from the file size: llama-server reports
none), at least every ``PROGRESS_EVERY`` seconds, so the SDK's timeout between messages is
never reached by a long load. A cancel on the channel cancels the load (as the tray's Cancel).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from typing import Any

from app.core.api.common import shown
from app.core.api.lmstudio import refuse_busy_reload
from app.core.api.lmstudio_ws.channels import Channel
from app.core.api.lmstudio_ws.errors import SdkError
from app.core.api.lmstudio_ws.info import instance_info, model_info
from app.core.api.lmstudio_ws.kv import load_config
from app.core.api.lmstudio_ws.models import entry_named, find, load_failed
from app.core.api.lmstudio_ws.state import Session
from app.core.lifecycle.instance import BusyError, Instance, LoadFailedError
from app.core.models.entry import ModelEntry

PROGRESS_EVERY = 0.5  # seconds between progress messages while a model loads
READ_RATE = 1e9  # bytes/s assumed for the progress estimate
MAX_NAME = 256  # an instance name's length, as LM Studio's identifiers


def _ttl(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        raise SdkError(f'"{field}" must be a number of milliseconds >= 1, not {shown(value)}')
    return value / 1000


def _param(param: Any) -> dict[str, Any]:
    if not isinstance(param, dict):
        raise SdkError(f"Expected an object as the channel's parameter, not {param!r:.100}")
    return param


async def _load(
    s: Session, ch: Channel, entry: ModelEntry, work: Awaitable[Instance], kind: str
) -> Instance:
    """Await the load, sending ``{"type": kind, "progress": p}`` meanwhile."""
    task = asyncio.ensure_future(work)
    cancel = asyncio.ensure_future(ch.cancelled.wait())
    start = time.monotonic()
    expected = 1.0 + entry.size_bytes / READ_RATE
    sent = 0.0
    try:
        while True:
            await asyncio.wait(
                {task, cancel}, timeout=PROGRESS_EVERY, return_when=asyncio.FIRST_COMPLETED
            )
            if task.done():
                try:
                    return task.result()
                except BusyError as e:
                    raise SdkError(
                        f"Cannot load {entry.key} now", cause=str(e), suggestion=None
                    ) from None
                except LoadFailedError as e:
                    raise load_failed(s, entry, e) from None
            if cancel.done():
                await s.c.lifecycle.cancel_load(entry)
                raise SdkError(f"Loading {entry.key} was cancelled by the client")
            progress = round(0.99 * (1 - math.exp(-(time.monotonic() - start) / expected)), 3)
            if progress > sent:
                sent = progress
                await ch.send({"type": kind, "progress": progress})
    finally:
        cancel.cancel()
        if not task.done():
            task.cancel()  # our wait only: a load others wait for goes on (lifecycle)
            await asyncio.gather(task, return_exceptions=True)


async def load_model(s: Session, ch: Channel, param: Any) -> None:
    """``loadModel``: load ``modelKey`` with the config (again, if loaded otherwise)."""
    p = _param(param)
    entry = entry_named(s, p.get("modelKey"))
    config = load_config(p.get("loadConfigStack"), s.namespace, entry)
    ttl = _ttl(p.get("ttlMs"), "ttlMs")
    name = p.get("identifier")
    if name is not None:
        other = find(s, name) if isinstance(name, str) and name else None
        bad = not isinstance(name, str) or not name or len(name) > MAX_NAME
        if bad or (other is not None and other != entry):
            raise SdkError(
                f"Cannot name the instance {name!r:.100}: "
                + (
                    "that names another model"
                    if other
                    else f"a name is a string of 1 to {MAX_NAME} characters"
                ),
                suggestion="Choose another identifier, or leave it out to use the model key.",
            )
    refuse_busy_reload(s.c.lifecycle.ready(entry), entry, config)
    await ch.send({"type": "resolved", "info": model_info(entry)})
    inst = await _load(s, ch, entry, s.c.lifecycle.ensure(entry, config), "progress")
    if name:
        s.state.names[entry.key] = name
    else:
        s.state.names.pop(entry.key, None)
    if ttl is not None:
        s.c.lifecycle.set_ttl(inst.port, ttl)
    await ch.send({"type": "success", "info": instance_info(s, _now(s, inst))})


async def get_or_load(s: Session, ch: Channel, param: Any) -> None:
    """``getOrLoad``: the loaded instance as it is, else load it (with the config, TTL)."""
    p = _param(param)
    entry = entry_named(s, p.get("identifier"))
    inst = s.c.lifecycle.ready(entry)
    if inst is not None:
        await ch.send({"type": "alreadyLoaded", "info": instance_info(s, inst)})
        return
    config = load_config(p.get("loadConfigStack"), s.namespace, entry)
    ttl = _ttl(p.get("loadTtlMs"), "loadTtlMs")
    await ch.send(
        {
            "type": "startLoading",
            "identifier": s.state.name_of(entry.key),
            "info": model_info(entry),
        }
    )
    inst = await _load(s, ch, entry, s.c.lifecycle.ensure(entry, config), "loadProgress")
    if ttl is not None:
        s.c.lifecycle.set_ttl(inst.port, ttl)
    await ch.send({"type": "loadSuccess", "info": instance_info(s, _now(s, inst))})


def _now(s: Session, inst: Instance) -> Instance:
    """The instance as it is now (its TTL just set)."""
    return s.c.lifecycle.ready(inst.key) or inst
