"""What another part of the core may add around a server's life, without the manager knowing
it: arguments at its start, work once it is ready (before anyone is told) and before a
graceful stop. The slot cache (``app.core.slots``) is the one user."""

from __future__ import annotations

from typing import Protocol

from app.core.servers.states import LaunchSpec, ServerStatus


class ServerHooks(Protocol):
    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """Arguments added to the command line of the server about to start with ``spec``,
        before the user's own (``spec.extra_args``), which come last and so win."""
        ...

    async def after_ready(self, status: ServerStatus) -> None:
        """The server answers ``/health``; it is marked ready when this returns. Errors are
        logged by the manager, never failing the load."""
        ...

    async def before_stop(self, status: ServerStatus) -> None:
        """A ready server is about to be stopped on purpose (unload, switch, quit; not a
        crash, a hung server or a failed load). Errors are logged, the stop goes on."""
        ...
