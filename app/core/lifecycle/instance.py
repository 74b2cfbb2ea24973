"""A model process as the lifecycle reports it (``Instance``), its events, and the errors a
load answers with."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.models.entry import ModelEntry
from app.core.models.launch_args import LoadConfig, running_config
from app.core.presets.fields import ModelPreset
from app.core.presets.flags import read_args
from app.core.servers.states import ServerState, ServerStatus


class LoadFailedError(RuntimeError):
    """The model could not be loaded; the message says why (answered as 503)."""


class BusyError(LoadFailedError):
    """A model in the way is busy (requests in flight, held by a run) past the wait."""


class ModelNotLoadedError(RuntimeError):
    """The model is not loaded and JIT loading is off."""


@dataclass(frozen=True)
class Instance:
    """A snapshot of one running (or failed) model process."""

    key: str
    entry: ModelEntry | None  # None when its file is no longer in the catalogue
    status: ServerStatus
    in_flight: int = 0
    held_by: tuple[str, ...] = ()
    last_used: float = 0.0
    stale: str | None = None  # "restart to apply" and why
    # its own idle unload in seconds (a client's "ttl", else its preset's); None: the default
    ttl: float | None = None
    requests: int = 0  # requests served since it started
    pinned: bool = False  # its preset pins it: placement and idle unload never unload it
    responding: bool = True  # False while its server's health check goes unanswered
    file_note: str | None = None  # "file moved or deleted", "file changed: restart to ..."

    @property
    def settings(self) -> ModelPreset:
        """What it actually runs with: its whole command line read back (the context size
        and GPU layers the manager passed, the model's preset and the client's options)."""
        spec = self.status.spec
        return read_args(spec.command("llama-server")) if spec is not None else ModelPreset()

    @property
    def config(self) -> LoadConfig:
        """The load config it runs with (context length and the client's choices)."""
        spec = self.status.spec
        if spec is None:
            return LoadConfig()
        ctx = self.context_length or 0
        return running_config(ctx, spec.extra_args, spec.n_gpu_layers)

    @property
    def port(self) -> int:
        return self.status.port

    @property
    def pid(self) -> int | None:
        return self.status.pid

    @property
    def state(self) -> ServerState:
        return self.status.state

    @property
    def ready(self) -> bool:
        return self.status.state is ServerState.READY

    @property
    def context_length(self) -> int | None:
        ctx = self.status.spec.ctx_size if self.status.spec else 0
        return ctx or (self.entry.max_context_length if self.entry else None)

    @property
    def title(self) -> str:
        return self.entry.title if self.entry else self.status.model_name


@dataclass(frozen=True)
class InstanceEvent:
    key: str
    old: ServerState
    new: ServerState
    instance: Instance


def config_differs(st: ServerStatus, config: LoadConfig | None) -> list[str]:
    """The fields of ``config`` the server on ``st`` runs with other values of."""
    if config is None or st.spec is None:
        return []
    spec = st.spec
    return config.differs(running_config(spec.ctx_size, spec.extra_args, spec.n_gpu_layers))
