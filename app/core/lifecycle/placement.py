"""Where a model runs: one pure function from (target, running instances, free memory,
policy, RPC workers) to a decision (port, instances to evict, or wait; the workers it runs
across), tested on tables.

- ``switch`` (the seed's approach A): one model at a time on ``LLAMA_PORT``.
- ``parallel`` (approach B): the roles on their own ports, other models on free ports
  beside them; nothing is evicted except to honour ``MAX_LOADED_MODELS``.
- ``auto``: beside the others while the measured free memory covers the estimate plus a
  margin; otherwise the least recently used idle instances are evicted until it fits, and
  when even that is not enough, across llama.cpp RPC workers (other machines' GPUs) whose
  free memory makes it fit, counted as this machine's is.

An instance with requests in flight, or one a run holds, is never evicted: the decision
is then to wait for it (the caller waits up to ``EVICT_WAIT_SECONDS`` and decides again).
A pinned instance (its preset says ``pinned``) is never evicted and never waited for: a
load that would need its room loads beside it, on another port if it holds the one wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
    rpc: tuple[str, ...] | None = None  # the RPC workers its settings name; None: none


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
class Worker:
    """A llama.cpp RPC worker (another machine's GPU) as placement weighs it."""

    address: str  # host:port, as llama-server's --rpc takes it
    free: int = 0  # bytes free on its devices
    problem: str = ""  # why it cannot take a model now ("is offline: …"); "": it can


@dataclass(frozen=True)
class Decision:
    port: int | None  # None: a free port of the caller's choosing
    evict: tuple[str, ...] = ()  # keys to unload first
    wait_for: tuple[str, ...] = ()  # busy keys in the way: wait, then decide again
    reason: str = ""
    busy: tuple[str, ...] = field(default=(), compare=False)  # why each waits, in words
    rpc: tuple[str, ...] = ()  # the RPC workers it runs across (llama-server --rpc)
    refused: str = ""  # why it cannot load now (a worker its settings name is missing)
    fits: bool | None = field(default=None, compare=False)  # auto's estimate; None: not weighed

    @property
    def waits(self) -> bool:
        return bool(self.wait_for)


def _gb(n: int) -> str:
    return f"{n / 1024**3:.1f} GB"


def place(
    target: Target,
    running: Sequence[Running],
    free: Free | None,
    policy: Policy,
    workers: Sequence[Worker] = (),
) -> Decision:
    """Decide where ``target`` loads. ``running``: the other instances (not the target's
    own); ``free``: the measured free memory (needed in ``auto`` only); ``workers``: the
    llama.cpp RPC workers the settings name, as last checked.

    A model whose own settings name workers (``target.rpc``) runs across those that can be
    used, their free memory counted with this machine's. In ``auto``, a model that does not
    fit on this machine (evicting idle models as usual) runs across the fewest workers, the
    roomiest first, with which it fits; when not even all of them make it fit, it stays
    here as before."""
    others = [r for r in running if r.key != target.key]
    if target.rpc is not None:
        return _across_named(target, others, free, policy, workers)
    here = _place(target, others, free, policy)
    usable = sorted((w for w in workers if not w.problem and w.free > 0), key=lambda w: -w.free)
    if here.fits is not False or not usable or free is None:
        return here
    extra = 0
    for n, w in enumerate(usable, 1):
        extra += w.free
        with_workers = _place(target, others, Free(free.bytes + extra, free.what), policy)
        if with_workers.fits:
            chosen = usable[:n]
            why = (
                f"auto: {_gb(target.need)} needed, more than this machine has "
                f"({_gb(free.bytes)} {free.what}); across RPC workers "
                f"{', '.join(w.address for w in chosen)} ({_gb(extra)} free)"
            )
            return replace(with_workers, rpc=tuple(w.address for w in chosen), reason=why)
    return here


def _across_named(
    target: Target,
    others: list[Running],
    free: Free | None,
    policy: Policy,
    workers: Sequence[Worker],
) -> Decision:
    """``target`` across the workers its settings name, less those that cannot be used now
    (offline, another protocol, serving another model), which the reason names. When the
    memory is weighed (``auto``) and what is left is too small, the load is refused."""
    known = {w.address: w for w in workers}
    use: list[Worker] = []
    left_out: list[str] = []
    for address in target.rpc or ():
        w = known.get(address)
        if w is not None and not w.problem:
            use.append(w)
        else:
            left_out.append(f"{address} {w.problem if w else 'is not checked'}")
    extra = sum(w.free for w in use)
    pooled = Free(free.bytes + extra, free.what) if free is not None else None
    decision = _place(target, others, pooled, policy)
    where = f"across RPC workers {', '.join(w.address for w in use)}" if use else "here only"
    reason = f"{decision.reason}; its settings name RPC workers: {where}"
    if left_out:
        reason += f" (not {'; '.join(left_out)})"
    refused = ""
    if decision.fits is False and left_out and free is not None:
        refused = (
            f"{_gb(target.need)} needed, {_gb(free.bytes)} {free.what} here"
            + (f" and {_gb(extra)} on {', '.join(w.address for w in use)}" if use else "")
            + f"; RPC worker {'; '.join(left_out)}"
        )
    return replace(decision, rpc=tuple(w.address for w in use), reason=reason, refused=refused)


def _place(target: Target, others: list[Running], free: Free | None, policy: Policy) -> Decision:
    """Where ``target`` loads on this machine (``free``: what it weighs, workers included)."""
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
    fits: bool | None = None
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
            fits = room >= target.need
            if not fits:
                busy = [r for r in rest if r.busy]
                if busy and room + sum(r.need for r in busy) >= target.need:
                    # only waiting for a busy instance can make room
                    why = f"auto: {_gb(target.need)} needed, {_gb(room)} can be freed now"
                    return replace(_decide(port, chosen, why, busy), fits=False)
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
                    return replace(_decide(port, must, reason, busy), fits=fits)
                reason += f", exceeded: the pinned {_keys(pinned)} stays"
    return replace(_decide(port, must, reason), fits=fits)


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
