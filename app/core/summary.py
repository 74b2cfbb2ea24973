"""What the tray shows, worked out from the core's state (Qt-free, so it is testable).

- ``overall_state``: the one state the tray icon shows.
- ``tooltip``: the state in words, e.g. "LLM ready on :8082, VRAM 15.2 / 24 GB".
- ``model_view``: a role model's state line and which actions make sense now.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from app.core.app_core import AppCore
from app.core.gpu.models import GpuSnapshot
from app.core.models.entry import ModelEntry
from app.core.servers.states import ServerState, ServerStatus


class TrayState(enum.StrEnum):
    IDLE = "idle"  # nothing loaded
    LOADING = "loading"  # loading, switching or stopping
    READY = "ready"
    RUN = "run"  # a FamilyLog run in progress
    ERROR = "error"


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


_WORDS = {
    ServerState.STARTING: "loading",
    ServerState.READY: "ready",
    ServerState.STOPPING: "unloading",
    ServerState.FAILED: "failed",
}


def server_label(core: AppCore, status: ServerStatus) -> str:
    """The model's title ("LLM" for a role, else its name) for a server."""
    spec = status.spec
    entry = core.catalogue.by_file(spec.model_path, spec.mmproj) if spec else None
    return entry.title if entry else (status.model_name or "server")


def tooltip(
    core: AppCore, snapshot: GpuSnapshot | None = None, run_in_progress: bool = False
) -> str:
    parts = []
    for port, st in core.manager.statuses().items():
        if st.state in _WORDS:
            parts.append(f"{server_label(core, st)} {_WORDS[st.state]} on :{port}")
    if run_in_progress:
        parts.insert(0, run_words(core))
    if not parts:
        parts.append("No model loaded")
    if snapshot is not None:
        parts.append(snapshot.vram_text())
    return ", ".join(parts)


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


@dataclass(frozen=True)
class ModelView:
    entry: ModelEntry
    text: str  # "LLM: ready on :8082 (tiny-llama)"
    problem: str | None  # why it cannot be loaded
    busy: bool
    can_load: bool
    can_unload: bool


def model_view(core: AppCore, entry: ModelEntry) -> ModelView:
    lifecycle = core.lifecycle
    problem = entry.problem()
    inst = lifecycle.instance(entry) if entry.configured else None
    busy = lifecycle.is_busy(entry) if entry.configured else False
    if problem:
        text = f"{entry.title}: {problem}"
    elif inst is not None:
        text = f"{entry.title}: {_WORDS.get(inst.state, inst.state.value)} on :{inst.port} ({_name(entry)})"
    else:
        text = f"{entry.title}: not loaded ({_name(entry)})"
    return ModelView(
        entry=entry,
        text=text,
        problem=problem,
        busy=busy,
        can_load=not problem and not busy and inst is None,
        can_unload=not busy and inst is not None,
    )


def _name(entry: ModelEntry) -> str:
    return Path(entry.path).name
