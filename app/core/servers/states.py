"""The state of each llama-server port, as the manager sees it."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.core.transitions import Transitions


class ServerState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    FAILED = "failed"

    @property
    def alive(self) -> bool:
        return self in (ServerState.STARTING, ServerState.READY, ServerState.STOPPING)


# Which state of a port's server may follow which; the port table checks every change.
SERVER_TRANSITIONS = Transitions(
    "server",
    ServerState,
    {
        # spawned; or it could not be: the port is taken, the log or the binary failed
        ServerState.STOPPED: {ServerState.STARTING, ServerState.FAILED},
        # ready; stopped (cancel, a timeout); exited while loading (or gone at its stop)
        ServerState.STARTING: {
            ServerState.READY,
            ServerState.STOPPING,
            ServerState.STOPPED,
            ServerState.FAILED,
        },
        # unloaded or restarted; crashed; or stopped as hung
        ServerState.READY: {ServerState.STOPPING, ServerState.FAILED},
        # stopped; or stopped as failed (a hung server, a load past its timeout)
        ServerState.STOPPING: {ServerState.STOPPED, ServerState.FAILED},
        # restarted, or cleared by an unload
        ServerState.FAILED: {ServerState.STARTING, ServerState.STOPPED},
    },
)


FileId = tuple[int, int, int, int]  # device, inode, size, mtime (ns)


def file_identity(path: str | Path) -> FileId | None:
    """What tells one file at ``path`` from another put there later (None: no file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


FILE_GONE = "file moved or deleted"
FILE_CHANGED = "file changed: restart to use the new one"


def file_note(st: ServerStatus) -> str | None:
    """What became of the file the server on ``st`` was started from (None: it is there,
    unchanged; a server it runs keeps the old file open either way)."""
    spec = st.spec
    if spec is None or st.state is ServerState.STOPPED:
        return None
    now = file_identity(spec.model_path)
    if now is None or (spec.mmproj and file_identity(spec.mmproj) is None):
        return FILE_GONE
    if st.file_id is not None and now != st.file_id:
        return FILE_CHANGED
    return None


@dataclass(frozen=True)
class LaunchSpec:
    """Everything that decides how a server is started; equal specs mean the same server."""

    model_path: str
    port: int
    n_gpu_layers: int = -1
    ctx_size: int = 8192
    mmproj: str | None = None
    n_threads: int | None = None
    extra_args: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)

    @property
    def file(self) -> tuple[str, str | None]:
        """The model it runs, as a catalogue entry's ``file``: (model, projector or None)."""
        return (self.model_path, self.mmproj or None)

    def command(self, binary: str) -> list[str]:
        cmd = [
            binary,
            "--model",
            self.model_path,
            "--port",
            str(self.port),
            "--n-gpu-layers",
            str(self.n_gpu_layers),
            "--ctx-size",
            str(self.ctx_size),
            "--host",
            "127.0.0.1",
        ]
        if self.mmproj:
            cmd += ["--mmproj", self.mmproj]
        if self.n_threads:
            cmd += ["--threads", str(self.n_threads)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        cmd += list(self.extra_args)
        return cmd


@dataclass(frozen=True)
class ServerStatus:
    """A snapshot of one port; the UI and the API render these."""

    port: int
    state: ServerState
    spec: LaunchSpec | None = None
    pid: int | None = None
    log_path: Path | None = None
    started_at: float | None = None  # time.time() of the spawn
    ready_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    # The key this start of the server asks for (``auth_headers`` sends it); None: no key.
    key: str | None = field(default=None, repr=False)
    # The path it serves under (``keys.PRIVATE_PREFIX`` when private; ``keys.server_url``).
    prefix: str = ""
    log_problem: str | None = None  # its log could not be written: logging is paused
    file_id: FileId | None = None  # the model file it was started from (``file_identity``)

    @property
    def model_path(self) -> str | None:
        return self.spec.model_path if self.spec else None

    @property
    def model_name(self) -> str:
        return Path(self.spec.model_path).stem if self.spec else ""

    def evolve(self, **changes) -> ServerStatus:
        return replace(self, **changes)


@dataclass(frozen=True)
class StateEvent:
    """Sent to subscribers on every state change of a port."""

    port: int
    old: ServerState
    new: ServerState
    status: ServerStatus
