"""Where a model runs: one pure function from (target, running instances, free memory,
policy) to a decision (port, instances to evict, or wait), tested on tables.

- ``switch`` (the seed's approach A): one model at a time on ``LLAMA_PORT``.
- ``parallel`` (approach B): the roles on their own ports, other models on free ports
  beside them; nothing is evicted except to honour ``MAX_LOADED_MODELS``.
- ``auto``: beside the others while the measured free memory covers the estimate plus a
  margin; otherwise the least recently used idle instances are evicted until it fits.

An instance with requests in flight, or one a run holds, is never evicted: the decision
is then to wait for it (the caller waits up to ``EVICT_WAIT_SECONDS`` and decides again).
A pinned instance (its preset says ``pinned``) is never evicted and never waited for: a
load that would need its room loads beside it, on another port if it holds the one wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.core.discovery.gguf_info import GGUFInfo
from app.core.models.entry import ModelEntry
from app.core.presets.fields import ModelPreset

Mode = Literal["switch", "parallel", "auto"]
SAFETY_FACTOR = 1.15
OVERHEAD_BYTES = 512 * 1024**2  # compute buffers, CUDA/Vulkan context


# bytes per cached value of llama.cpp's KV cache types (a block's scale included)
KV_BYTES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}


def estimate_need(entry: ModelEntry, ctx_size: int, settings: ModelPreset | None = None) -> int:
    """Bytes a model needs loaded: file(s) + KV cache at ``ctx_size`` (of the cache types its
    ``settings`` choose) + its draft model's file, with a margin."""
    draft = 0
    if settings is not None and settings.model_draft:
        try:
            draft = Path(settings.model_draft).stat().st_size
        except OSError:
            pass  # the load says what is wrong with it
    k = KV_BYTES.get((settings.cache_type_k if settings else None) or "f16", 2.0)
    v = KV_BYTES.get((settings.cache_type_v if settings else None) or "f16", 2.0)
    return estimate_bytes(entry.size_bytes + draft, entry.info, ctx_size, (k + v) / 2)


def estimate_bytes(
    size_bytes: int, info: GGUFInfo | None, ctx_size: int, kv_bytes_per_value: float = 2.0
) -> int:
    """``estimate_need`` for files of ``size_bytes`` (the model's, with its projector) whose
    header says ``info``: also for a model not downloaded yet. ``kv_bytes_per_value``: of
    the KV cache's type (f16: 2)."""
    ctx = ctx_size or (info.context_length if info else 0) or 4096
    kv = info.kv_cache_bytes(ctx, kv_bytes_per_value) if info else 0
    return int((size_bytes + kv) * SAFETY_FACTOR) + OVERHEAD_BYTES


@dataclass(frozen=True)
class Target:
    key: str
    need: int = 0  # estimated bytes
    port: int | None = None  # a role's configured port; None: any free port
    beside: bool = False  # a run needs it loaded together with the others (never evicts)


@dataclass(frozen=True)
class Running:
    key: str
    port: int
    need: int = 0
    in_flight: int = 0
    held: bool = False  # a FamilyLog run holds it
    last_used: float = 0.0
    pinned: bool = False  # its preset pins it: never evicted

    @property
    def busy(self) -> bool:
        return self.in_flight > 0 or self.held

    def why_busy(self) -> str:
        if self.in_flight:
            n = self.in_flight
            return f"{self.key} is serving {n} request{'s' if n != 1 else ''}"
        return f"{self.key} is held by a FamilyLog run"


@dataclass(frozen=True)
class Policy:
    mode: Mode = "auto"
    llama_port: int = 8080  # switch mode's one port
    max_loaded: int = 0  # 0: no cap


@dataclass(frozen=True)
class Free:
    bytes: int
    what: str = "free GPU memory"


@dataclass(frozen=True)
class Decision:
    port: int | None  # None: a free port of the caller's choosing
    evict: tuple[str, ...] = ()  # keys to unload first
    wait_for: tuple[str, ...] = ()  # busy keys in the way: wait, then decide again
    reason: str = ""
    busy: tuple[str, ...] = field(default=(), compare=False)  # why each waits, in words

    @property
    def waits(self) -> bool:
        return bool(self.wait_for)


def _gb(n: int) -> str:
    return f"{n / 1024**3:.1f} GB"


def place(
    target: Target, running: Sequence[Running], free: Free | None, policy: Policy
) -> Decision:
    """Decide where ``target`` loads. ``running``: the other instances (not the target's
    own); ``free``: the measured free memory (needed in ``auto`` only)."""
    others = [r for r in running if r.key != target.key]
    pinned = [r for r in others if r.pinned]
    movable = [r for r in others if not r.pinned]
    if policy.mode == "switch" and not target.beside:
        port: int | None = policy.llama_port
        reason = "RUN_MODE=switch: one model at a time"
        if pinned:
            reason += f" besides the pinned {_keys(pinned)}"
        if any(r.port == port for r in pinned):
            port, reason = None, reason + f", which holds port {policy.llama_port}"
        return _decide(port, movable, reason)
    port = target.port
    reason = f"RUN_MODE={policy.mode}"
    if target.beside:
        reason = "a FamilyLog run needs it beside the others"
    holding = [r for r in pinned if port is not None and r.port == port]
    if holding:
        reason += f"; the pinned {_keys(holding)} holds port {port}"
        port = None
    must: list[Running] = [r for r in movable if port is not None and r.port == port]
    rest = sorted((r for r in movable if r not in must), key=lambda r: r.last_used)
    if policy.mode == "auto" and not target.beside:
        if free is None:
            reason = "auto: free memory unknown, loading beside the others"
        else:
            room = free.bytes + sum(r.need for r in must)
            chosen = list(must)
            for r in rest:
                if room >= target.need:
                    break
                if not r.busy:
                    chosen.append(r)
                    room += r.need
            if room < target.need:
                busy = [r for r in rest if r.busy]
                if busy and room + sum(r.need for r in busy) >= target.need:
                    # only waiting for a busy instance can make room
                    why = f"auto: {_gb(target.need)} needed, {_gb(room)} can be freed now"
                    return _decide(port, chosen, why, busy)
                reason = (
                    f"auto: {_gb(target.need)} needed, at most {_gb(room)} can be freed; "
                    "loading anyway (the estimate may be high)"
                )
                if pinned:
                    reason += f"; the pinned {_keys(pinned)} stays"
            else:
                reason = f"auto: {_gb(free.bytes)} {free.what}, {_gb(target.need)} needed"
            must = chosen
    if policy.max_loaded > 0 and not target.beside:
        staying = [r for r in others if r not in must]
        over = len(staying) + 1 - policy.max_loaded
        if over > 0:
            idle = [
                r for r in sorted(staying, key=lambda r: r.last_used) if not r.busy and not r.pinned
            ]
            must = must + idle[:over]
            reason += f"; MAX_LOADED_MODELS={policy.max_loaded}"
            if len(idle) < over:
                busy = [r for r in staying if r.busy and not r.pinned]
                if busy:
                    return _decide(port, must, reason, busy)
                reason += f", exceeded: the pinned {_keys(pinned)} stays"
    return _decide(port, must, reason)


def _keys(instances: Sequence[Running]) -> str:
    return ", ".join(r.key for r in instances)


def _decide(
    port: int | None,
    evict: Sequence[Running],
    reason: str,
    wait: Sequence[Running] | None = None,
) -> Decision:
    """Evict ``evict``; wait for ``wait`` (default: the busy ones among ``evict``)."""
    busy = [r for r in evict if r.busy] if wait is None else list(wait)
    return Decision(
        port,
        tuple(r.key for r in evict),
        tuple(r.key for r in busy),
        reason,
        tuple(r.why_busy() for r in busy),
    )
