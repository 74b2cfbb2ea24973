"""What the tray shows, worked out from the core's state (Qt-free, so it is testable).

The tray speaks in models: ports and PIDs appear in the models window's details only.

- ``overall_state``: the one state the tray icon shows.
- ``status_line``: "LLM ready · 4.3 GB VRAM" (or "Nothing loaded").
- ``tooltip``: the status line, a run in progress, the GPU's memory and a download in
  progress, in words.
- ``model_view``: a model's state line and its one action in the menu.
- ``other_models``: the catalogue's models that are not FamilyLog's, loaded first.
- ``speed_line``: "LLM 54.8 t/s", each loaded model's generation speed (tooltip).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.core.app_core import AppCore
from app.core.gpu.server_memory import ServerMemory
from app.core.gpu.snapshot import GpuSnapshot
from app.core.lifecycle.instance import Instance
from app.core.machine_rows import machines_summary
from app.core.models.entry import ModelEntry
from app.core.models.stats import ModelStats, speed_text
from app.core.servers.external import ExternalServer
from app.core.servers.states import ServerState, ServerStatus
from app.core.tray_state import TrayState
from app.core.units import mib_text

MemoryByPid = Mapping[int, ServerMemory]


def overall_state(statuses: dict[int, ServerStatus], run_in_progress: bool = False) -> TrayState:
    states = {s.state for s in statuses.values()}
    if ServerState.FAILED in states:
        return TrayState.ERROR
    if run_in_progress:
        return TrayState.RUN
    if states & {ServerState.STARTING, ServerState.STOPPING}:
        return TrayState.LOADING
    if ServerState.READY in states:
        return TrayState.READY
    return TrayState.IDLE


WORDS = {
    ServerState.STOPPED: "not loaded",
    ServerState.STARTING: "loading",
    ServerState.READY: "ready",
    ServerState.STOPPING: "unloading",
    ServerState.FAILED: "failed",
}

EXTERNAL_WARNING = "Another program holds a model port — see Models window"


def external_text(ext: ExternalServer) -> str:
    """ "llama-server on :8080: external (PID 123)": a port held by a program the app did
    not start (never stopped by the app). For the models window only."""
    what = "llama-server" if ext.is_llama_server else (ext.name or "another program")
    pid = f"PID {ext.pid}" if ext.pid else "PID unknown"
    return f"{what} on :{ext.port}: external ({pid})"


# ── Memory ───────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Memory:
    """What one model process holds: on the GPU (VRAM) or, without one, in RAM."""

    mib: float
    where: str  # "VRAM" or "RAM"
    split: str = ""  # "model 4403 · KV 1024 · compute 560 MiB" from the server's log

    def text(self) -> str:
        return f"{mib_text(self.mib)} {self.where}"


def instance_memory(
    inst: Instance, snapshot: GpuSnapshot | None, memory: MemoryByPid | None
) -> Memory | None:
    """The GPU probe's number for the process, else its log's device buffers; without GPU
    memory its RSS (or its log's host buffers). None when nothing is known yet."""
    pid = inst.pid
    if pid is None:
        return None
    mem = (memory or {}).get(pid)
    split = mem.split_text() if mem is not None else ""
    gpu = snapshot.gpu_mib_of(pid) if snapshot is not None else None
    if gpu is not None:
        return Memory(gpu, "VRAM", split)
    if mem is not None and mem.device_mib:
        return Memory(mem.device_mib, "VRAM", split)
    rss = snapshot.rss_mib.get(pid) if snapshot is not None else None
    if rss is not None:
        return Memory(rss, "RAM", split)
    if mem is not None and mem.host_mib:
        return Memory(mem.host_mib, "RAM", split)
    return None


# ── The status line and the tooltip ────────────────────────────────────────────
def _title(inst: Instance) -> str:
    return inst.title or inst.key


def _names(titles: list[str]) -> str:
    return ", ".join(titles)


def status_line(
    core: AppCore, snapshot: GpuSnapshot | None = None, memory: MemoryByPid | None = None
) -> str:
    """ "LLM ready · 4.3 GB VRAM", "LLM ready, loading Vision · 4.3 GB VRAM",
    "Nothing loaded": the models in words and the memory they hold, no ports."""
    insts = core.lifecycle.snapshot()
    by_state: dict[ServerState, list[str]] = {}
    for inst in insts:
        by_state.setdefault(inst.state, []).append(_title(inst))
    words = []
    if ServerState.READY in by_state:
        words.append(f"{_names(by_state[ServerState.READY])} ready")
    if ServerState.STARTING in by_state:
        words.append(f"loading {_names(by_state[ServerState.STARTING])}")
    if ServerState.STOPPING in by_state:
        words.append(f"unloading {_names(by_state[ServerState.STOPPING])}")
    if ServerState.FAILED in by_state:
        words.append(f"{_names(by_state[ServerState.FAILED])} failed")
    if not words:
        return "Nothing loaded"
    text = ", ".join(words)
    if ServerState.READY not in by_state and by_state.keys() & {
        ServerState.STARTING,
        ServerState.STOPPING,
    }:  # it starts with "loading" or "unloading"
        text = text[0].upper() + text[1:]
    totals: dict[str, float] = {}
    for inst in insts:
        if inst.state.alive:
            m = instance_memory(inst, snapshot, memory)
            if m is not None:
                totals[m.where] = totals.get(m.where, 0.0) + m.mib
    held = [f"{mib_text(totals[w])} {w}" for w in ("VRAM", "RAM") if w in totals]
    return " · ".join([text, " + ".join(held)]) if held else text


def tooltip(
    core: AppCore,
    snapshot: GpuSnapshot | None = None,
    run_in_progress: bool = False,
    memory: MemoryByPid | None = None,
) -> str:
    lines = []
    if run_in_progress:
        lines.append(run_words(core))
    lines.append(status_line(core, snapshot, memory))
    speed = speed_line(core)
    if speed:
        lines.append(speed)
    if snapshot is not None:
        lines.append(snapshot.vram_text())
    if core.external:
        lines.append(EXTERNAL_WARNING)
    downloading = core.downloads.summary() if core.downloads is not None else None
    if downloading:
        lines.append(downloading)
    machines = machines_summary(core)
    if machines:
        lines.append(machines[0].upper() + machines[1:])
    return "\n".join(lines)


def stats_of(core: AppCore, key: str) -> ModelStats | None:
    stats = getattr(core, "stats", None)
    return stats.get(key) if stats is not None else None


def speed_line(core: AppCore) -> str:
    """ "LLM 54.8 t/s · Vision 12.1 t/s": the loaded models that have served a timed reply
    (rolling generation speed over their last replies)."""
    parts = []
    for inst in core.lifecycle.snapshot():
        if inst.state.alive:
            text = speed_text(stats_of(core, inst.key))
            if text:
                parts.append(f"{_title(inst)} {text}")
    return " · ".join(parts)


def run_words(core: AppCore) -> str:
    """ "FamilyLog run 03:12: <last line>" while a run lasts."""
    runs = getattr(core, "runs", None)
    st = runs.status() if runs is not None else None
    if st is None or not st.busy:
        return "FamilyLog run in progress"
    last = " ".join(st.last_line.split())
    if len(last) > 60:
        last = last[:59] + "…"
    return f"FamilyLog run {st.elapsed_text}" + (f": {last}" if last else "")


# ── One model in the menu ──────────────────────────────────────────────────────
def instance_of(core: AppCore, entry: ModelEntry) -> Instance | None:
    """The model's live instance, else a failed one (shown until cleared)."""
    if not entry.configured:
        return None
    inst = core.lifecycle.instance(entry)
    if inst is not None:
        return inst
    for i in core.lifecycle.snapshot():
        if i.state is ServerState.FAILED and i.entry is not None and i.entry.file == entry.file:
            return i
    return None


@dataclass(frozen=True)
class ModelView:
    entry: ModelEntry
    name: str  # "LLM" for a role, else the model's name
    state: ServerState  # its process's (STOPPED: not loaded); ``state_text`` in words
    text: str  # "LLM: ready · tiny-llama"
    problem: str | None  # why it cannot be loaded
    busy: bool  # loading or unloading: Load/Unload are greyed
    action: str  # "load", "unload", or "cancel" while it loads: the one action offered
    enabled: bool

    @property
    def can_load(self) -> bool:
        return self.action == "load" and self.enabled

    @property
    def can_unload(self) -> bool:
        return self.action == "unload" and self.enabled

    @property
    def state_text(self) -> str:
        """ "not loaded", "loading", "ready", "unloading", "failed"."""
        return WORDS[self.state]

    @property
    def action_text(self) -> str:
        if self.action == "cancel":
            return f"Cancel loading {self.name}"
        if self.busy:
            return f"{self.name}: {self.state_text}…"
        return f"{self.action.capitalize()} {self.name}"


def model_view(core: AppCore, entry: ModelEntry, name: str | None = None) -> ModelView:
    """The model's state and its one action now: Cancel while it loads, Unload while it
    runs, else Load."""
    lifecycle = core.lifecycle
    problem = entry.problem()
    inst = instance_of(core, entry)
    state = inst.state if inst is not None else ServerState.STOPPED
    busy = (lifecycle.is_busy(entry) if entry.configured else False) or state in (
        ServerState.STARTING,
        ServerState.STOPPING,
    )
    alive = state.alive
    name = name or entry.title
    if problem and not alive:
        text = f"{entry.title}: {problem}"
    elif entry.role:
        text = f"{entry.title}: {WORDS[state]} · {entry.display_name}"
    else:
        text = f"{name}: {WORDS[state]}"
    return ModelView(
        entry=entry,
        name=name,
        state=state,
        text=text,
        problem=problem,
        busy=busy,
        action="cancel" if state is ServerState.STARTING else "unload" if alive else "load",
        enabled=state is ServerState.STARTING or (not busy and (alive or not problem)),
    )


def menu_names(entries: list[ModelEntry]) -> dict[str, str]:
    """Key → the name the menu shows: the model's name, or its key where names repeat."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.display_name] = counts.get(e.display_name, 0) + 1
    return {e.key: e.display_name if counts[e.display_name] == 1 else e.key for e in entries}


def other_models(core: AppCore) -> list[ModelView]:
    """The catalogue's models that are not FamilyLog's roles: loaded ones first, then by
    last use (most recent first), then in the catalogue's order."""
    entries = [e for e in core.catalogue.entries() if not e.role]
    names = menu_names(entries)
    lifecycle = core.lifecycle
    views = [model_view(core, e, names[e.key]) for e in entries]
    order = {e.key: i for i, e in enumerate(entries)}

    def key(v: ModelView) -> tuple:
        loaded = v.state.alive
        return (not loaded, -lifecycle.last_used(v.entry), order[v.entry.key])

    return sorted(views, key=key)
