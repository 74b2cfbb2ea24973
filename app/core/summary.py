"""What the tray shows, worked out from the core's state (Qt-free, so it is testable).

- ``overall_state``: the one state the tray icon shows.
- ``tooltip``: the state in words, e.g. "LLM ready on :8082, VRAM 15.2 / 24 GB".
- ``profile_view``: a profile's state line and which actions make sense now.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from app.core.app_core import AppCore
from app.core.gpu.models import GpuSnapshot
from app.core.models.profiles import ModelProfile
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
    """The profile's title ("LLM") when the server runs a profile's model, else the model name."""
    profile = core.profile_for_status(status)
    return profile.title if profile else (status.model_name or "server")


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
class ProfileView:
    profile: ModelProfile
    text: str  # "LLM: ready on :8082 (tiny-llama)"
    problem: str | None  # why it cannot be loaded
    busy: bool
    can_load: bool
    can_unload: bool
    can_switch: bool
    ports: tuple[int, ...]  # where it runs (or failed), for Unload


def profile_view(core: AppCore, profile: ModelProfile) -> ProfileView:
    problem = profile.problem()
    statuses = core.manager.statuses()
    mine = {
        port: st
        for port, st in statuses.items()
        if st.state is not ServerState.STOPPED
        and st.spec is not None
        and profile.model_path
        and st.spec.model_path == profile.model_path
    }
    single = core.settings.LLAMA_PORT
    busy = any(core.manager.is_busy(p) for p in {profile.port, single, *mine})
    if problem:
        text = f"{profile.title}: {problem}"
    elif mine:
        desc = ", ".join(
            f"{_WORDS.get(st.state, st.state.value)} on :{p}" for p, st in mine.items()
        )
        text = f"{profile.title}: {desc} ({_name(profile)})"
    else:
        text = f"{profile.title}: not loaded ({_name(profile)})"
    own = statuses.get(profile.port)
    ready_on_own = own is not None and own.state is ServerState.READY and profile.port in mine
    on_single = single in mine and mine[single].state is ServerState.READY
    return ProfileView(
        profile=profile,
        text=text,
        problem=problem,
        busy=busy,
        can_load=not problem and not busy and not ready_on_own,
        can_unload=not busy and bool(mine),
        can_switch=not problem and not core.manager.is_busy(single) and not on_single,
        ports=tuple(mine),
    )


def _name(profile: ModelProfile) -> str:
    return Path(profile.model_path).name
