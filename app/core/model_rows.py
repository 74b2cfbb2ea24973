"""The models window's rows, worked out from the core's state (Qt-free): one ``ModelRow``
of cells per catalogue model, loaded ones first; ports and PIDs only in ``details``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.core.app_core import AppCore
from app.core.gpu.snapshot import GpuSnapshot
from app.core.models.entry import ROLE_TITLES, ModelEntry
from app.core.models.stats import ModelStats, speed_text
from app.core.presets.store import value_text
from app.core.servers.states import ServerState
from app.core.summary import (
    MemoryByPid,
    instance_memory,
    instance_of,
    model_view,
    stats_of,
)
from app.core.units import elapsed_text, size_text

# ── The models window's rows ───────────────────────────────────────────────────
OWN_MARK = "\u2699 "  # ⚙ before the name of a model with settings of its own
TYPE_WORDS = {"llm": "LLM", "embedding": "Embedding", "reranker": "Reranker"}


def type_text(entry: ModelEntry) -> str:
    if entry.vision:
        return "Vision"
    return TYPE_WORDS.get(entry.type, entry.type)


@dataclass(frozen=True)
class ModelRow:
    """One row of the models window, every cell in words."""

    key: str
    name: str
    role: str
    type: str
    size: str
    quant: str
    context: str
    state: str  # "ready", "loading 0:03", "not loaded", ...
    memory: str  # "120 MB RAM (model 0.4 · KV 0.2 · compute 1.5 MiB)"
    details: str  # "port 8082 · PID 1234": the only place ports and PIDs appear
    tip: str  # the file, and why it cannot load or runs stale
    loaded: bool  # a process runs (or failed) for it: listed first
    loading: bool  # Cancel offered, a busy bar in the state cell
    started_at: float | None
    can_load: bool
    can_unload: bool
    speed: str = ""  # "54.8 t/s": rolling generation speed
    speed_tip: str = ""  # prompt speed, time to first token, requests, tokens
    speed_history: tuple[float, ...] = ()  # generation t/s of the last replies (sparkline)
    own_settings: bool = False  # a section of its own in models.ini (the name is marked)


def _speed_tip(st: ModelStats | None) -> str:
    if st is None or st.last is None:
        return ""
    parts = []
    last = st.last.generation_tokens_per_second
    if last is not None:
        parts.append(f"last reply {last:.1f} t/s")
    if st.prompt_tokens_per_second is not None:
        parts.append(f"prompt {st.prompt_tokens_per_second:.1f} t/s")
    if st.time_to_first_token_ms is not None:
        parts.append(f"time to first token {st.time_to_first_token_ms:.0f} ms")
    parts.append(f"{st.requests:,} requests, {st.tokens:,} tokens")
    return " · ".join(parts)


def model_row(
    core: AppCore,
    entry: ModelEntry,
    snapshot: GpuSnapshot | None = None,
    memory: MemoryByPid | None = None,
    now: float | None = None,
) -> ModelRow:
    view = model_view(core, entry)
    inst = instance_of(core, entry)
    crashed = core.lifecycle.start_problem(entry) if entry.configured else None
    loading = inst is not None and inst.state is ServerState.STARTING
    if loading and inst is not None and inst.status.started_at:
        state = f"loading {elapsed_text((now or time.time()) - inst.status.started_at)}"
    elif view.problem and inst is None:
        state = "cannot load"
    elif crashed and (inst is None or not inst.state.alive):
        state = "crashed at start"  # its back-off runs: the tip says why and when again
    elif inst is not None and not inst.responding:
        state = "not responding"  # its health check is unanswered: hung or not, decided soon
    else:
        state = view.state_text
    if inst is not None and inst.file_note and inst.state.alive:
        state += f" ({inst.file_note})"
    ctx_max = entry.max_context_length
    if inst is not None and inst.state.alive and inst.context_length:
        context = f"{inst.context_length:,}"
    else:
        context = f"{ctx_max:,}" if ctx_max else ""
    mem = instance_memory(inst, snapshot, memory) if inst is not None and inst.state.alive else None
    details = ""
    if inst is not None:
        details = f"port {inst.port}" + (f" · PID {inst.pid}" if inst.pid else "")
    st = stats_of(core, entry.key)
    tips = [entry.path] + ([f"mmproj: {entry.mmproj}"] if entry.mmproj else [])
    if view.problem:
        tips.append(view.problem)
    if crashed:
        tips.append(crashed)
    if inst is not None and inst.stale:
        tips.append(f"Runs stale: {inst.stale}")
    if inst is not None and inst.status.error:
        tips.append(inst.status.error)
    own, settings_tips = own_settings(core, entry)
    tips += settings_tips
    if inst is not None and inst.state.alive:  # what the process was started with
        tips.append(f"Runs with: {settings_text(inst.settings.by_key())}")
    return ModelRow(
        key=entry.key,
        name=(OWN_MARK if own else "") + entry.display_name,
        role=ROLE_TITLES.get(entry.role or "", ""),
        type=type_text(entry),
        size=size_text(entry.size_bytes) if entry.size_bytes else "",
        quant=entry.quant or "",
        context=context,
        state=state,
        memory=(mem.text() + (f" ({mem.split})" if mem.split else "")) if mem is not None else "",
        details=details,
        tip="\n".join(t for t in tips if t),
        loaded=inst is not None,
        loading=loading or (view.busy and inst is None),
        started_at=inst.status.started_at if inst is not None else None,
        can_load=view.can_load,
        can_unload=view.can_unload,
        speed=speed_text(st),
        speed_tip=_speed_tip(st),
        speed_history=tuple(st.history()) if st is not None else (),
        own_settings=own,
    )


def own_settings(core: AppCore, entry: ModelEntry) -> tuple[bool, list[str]]:
    """Whether ``entry`` has settings of its own in models.ini, and the tooltip lines: what
    they set, or why they cannot be used."""
    presets = core.presets
    own = presets.has_own(entry)
    problem = presets.problem(entry)
    if problem:
        return own, [problem]
    if not own:
        return False, []
    text = settings_text(presets.store.own(entry).by_key())
    return True, [f"Own settings (models.ini): {text}"]


def settings_text(values: dict) -> str:
    """Settings by models.ini's keys, in words: ``ctx-size = 4096, pinned = true``."""
    return ", ".join(f"{k} = {value_text(v)}" for k, v in values.items()) or "none"


def row_order(core: AppCore) -> list[ModelEntry]:
    """Every catalogue model, loaded ones (and failed ones) first, else in catalogue order."""
    entries = core.catalogue.entries()
    live = {i.entry.file for i in core.lifecycle.snapshot() if i.entry is not None and i.entry.file}
    return [e for e in entries if e.file in live] + [e for e in entries if e.file not in live]
