"""What the tray's "Machines" menu and the models window show of other machines (Qt-free):
this GPU shared or not, each RPC worker with its state and the reason, each peer with its
state and its models (type, state, speed)."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.app_core import AppCore
from app.core.machines.peers import PeerState
from app.core.machines.shared_worker import ShareState
from app.core.machines.workers import WorkerState
from app.core.models.stats import speed_text
from app.settings_machines import NO_AUTH

TYPE_WORDS = {"llm": "LLM", "vlm": "Vision", "embeddings": "Embedding"}


@dataclass(frozen=True)
class MachineLine:
    """One line: what it is, in words, and whether it is usable now."""

    text: str
    ok: bool = True
    tip: str = ""


@dataclass(frozen=True)
class PeerModelLine:
    key: str  # <peer>/<model>
    type: str
    state: str  # "loaded", "not loaded", "offline"
    speed: str = ""


def share_line(core: AppCore) -> MachineLine:
    """This GPU shared with other machines: where, and who can reach it."""
    shared = core.shared_worker
    if shared is None:
        return MachineLine("Sharing this GPU is not available", False)
    st = shared.status
    tip = f"{NO_AUTH}."
    if st.state is ShareState.RUNNING and st.remote:
        tip = f"Other machines on the network can use this GPU. {NO_AUTH}."
    return MachineLine(st.text(), st.state is not ShareState.FAILED, tip)


def worker_lines(core: AppCore) -> list[MachineLine]:
    """Each RPC worker the app uses (``RPC_WORKERS``, and any a model runs across)."""
    if core.workers is None:
        return []
    return [
        MachineLine(st.text(), st.state in (WorkerState.ONLINE, WorkerState.IN_USE), st.reason)
        for st in core.workers.shown()
    ]


def peer_lines(core: AppCore) -> list[tuple[MachineLine, list[PeerModelLine]]]:
    """Each peer, and its models as last read (an offline peer's shown offline)."""
    if core.peers is None:
        return []
    out = []
    for st in core.peers.shown():
        line = MachineLine(st.text(), st.state is not PeerState.OFFLINE, st.reason)
        models = []
        for m in st.models:
            state = m.state.replace("-", " ") if st.online else "offline"
            speed = speed_text(core.stats.get(m.key))
            models.append(PeerModelLine(m.key, TYPE_WORDS.get(m.type, m.type), state, speed))
        out.append((line, models))
    return out


def machines_summary(core: AppCore) -> str:
    """One line for the tray's tooltip, empty when no other machine is involved."""
    parts = []
    if core.shared_worker is not None and core.shared_worker.status.state is ShareState.RUNNING:
        parts.append("sharing this GPU")
    workers = core.workers.shown() if core.workers is not None else []
    if workers:
        up = sum(st.state in (WorkerState.ONLINE, WorkerState.IN_USE) for st in workers)
        parts.append(f"{up} of {len(workers)} RPC worker{'s' if len(workers) != 1 else ''} up")
    peers = core.peers.shown() if core.peers is not None else []
    if peers:
        up = sum(st.online for st in peers)
        parts.append(f"{up} of {len(peers)} peer{'s' if len(peers) != 1 else ''} online")
    return "; ".join(parts)
