"""The load decision: where a model loads and what must make room for it, from what runs
now (``running``), the settings (``policy``), in ``auto`` the measured free memory
(``measure_free``), and the RPC workers it may use (``worker_room``), by the pure placement
rule (``placement.place``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from app.config import Settings
from app.core.lifecycle.instance import Instance
from app.core.lifecycle.placement import (
    Free,
    Policy,
    Running,
    Target,
    Worker,
    estimate_need,
    place,
)
from app.core.models.entry import ModelEntry
from app.core.presets.fields import ModelPreset

FreeMemory = Callable[[], Free]
WorkerRoom = Callable[[tuple[str, ...] | None], Awaitable[list[Worker]]]
"""The RPC workers a load may use (``RPC_WORKERS`` and those its settings name), checked."""


@dataclass(frozen=True)
class Plan:
    port: int | None  # where it loads; None: a free port
    evict: frozenset[int] = frozenset()  # ports to unload first (its own: another config)
    wait: frozenset[int] = frozenset()  # busy ports in the way: wait for them, plan again
    why_wait: str = ""  # in words, for the log and the busy error
    reason: str = ""  # why there, for the log
    rpc: tuple[str, ...] = ()  # the RPC workers it runs across
    refused: str = ""  # why it cannot load now (a worker its settings name is missing)


def policy(s: Settings) -> Policy:
    return Policy(mode=s.RUN_MODE, llama_port=s.LLAMA_PORT, max_loaded=s.MAX_LOADED_MODELS)


def running(instances: Iterable[Instance], ctx_default: int) -> list[Running]:
    """The live instances as placement weighs them: estimated memory, busy, last use."""
    out = []
    for inst in instances:
        if not inst.status.state.alive:
            continue
        spec = inst.status.spec
        ctx = spec.ctx_size if spec else ctx_default
        out.append(
            Running(
                key=inst.key,
                port=inst.port,
                need=estimate_need(inst.entry, ctx, inst.settings) if inst.entry else 0,
                in_flight=inst.in_flight,
                held=bool(inst.held_by),
                last_used=inst.last_used,
                pinned=inst.pinned,
            )
        )
    return out


async def worker_room(
    s: Settings, room: WorkerRoom | None, named: tuple[str, ...] | None
) -> list[Worker]:
    """The workers placement weighs: none unless the settings or the model name some."""
    if room is None or not (named or s.RPC_WORKERS):
        return []
    return await room(named)


async def measure_free(s: Settings, free_memory: FreeMemory | None) -> Free | None:
    """The free memory ``auto`` weighs a load against (None in the other modes)."""
    if s.RUN_MODE != "auto" or free_memory is None:
        return None
    # a GPU probe can block (nvidia-smi): off the loop
    return await asyncio.get_running_loop().run_in_executor(None, free_memory)


def plan_load(
    entry: ModelEntry,
    ctx_size: int,
    *,
    settings: ModelPreset | None = None,
    beside: bool,
    own: Running | None,
    others: Sequence[Running],
    free: Free | None,
    policy: Policy,
    workers: Sequence[Worker] = (),
    named: tuple[str, ...] | None = None,
) -> Plan:
    """Where ``entry`` loads (``own``: its process with another config, loaded again;
    ``settings``: what it loads with, for its memory; ``named``: the RPC workers its
    settings name)."""
    target = Target(
        key=entry.key,
        need=estimate_need(entry, ctx_size, settings),
        port=own.port if own is not None else entry.port,
        beside=beside,
        rpc=named,
    )
    decision = place(target, others, free, policy, workers)
    by_key = {r.key: r for r in others}
    evict = {by_key[k].port for k in decision.evict}
    wait = {by_key[k].port for k in decision.wait_for}
    if own is not None:
        evict.add(own.port)
        if own.busy:
            wait.add(own.port)
    return Plan(
        port=decision.port,
        evict=frozenset(evict),
        wait=frozenset(wait),
        why_wait="; ".join(decision.busy) or f"{entry.key} is in use",
        reason=decision.reason,
        rpc=decision.rpc,
        refused=decision.refused,
    )


def free_port(avoid: set[int]) -> int:
    """A port free on 127.0.0.1 now, none of ``avoid``."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise RuntimeError("No free port on 127.0.0.1")
