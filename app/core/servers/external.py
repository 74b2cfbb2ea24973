"""Servers on the app's ports that the app did not start: shown, never killed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.core.servers.ports import port_holder, port_is_free


@dataclass(frozen=True)
class ExternalServer:
    """A process holding one of the configured ports that is not one of the app's."""

    port: int
    pid: int | None
    name: str | None
    cmdline: str | None

    @property
    def is_llama_server(self) -> bool:
        return "llama-server" in f"{self.name or ''} {self.cmdline or ''}"

    def describe(self) -> str:
        what = "llama-server" if self.is_llama_server else (self.name or "another program")
        return f"{what} (PID {self.pid})" if self.pid else f"{what} (PID unknown)"


def find_external(ports: Iterable[int], own_pids: set[int]) -> dict[int, ExternalServer]:
    """The configured ports held by a process outside ``own_pids``."""
    out: dict[int, ExternalServer] = {}
    for port in sorted(set(ports)):
        if port_is_free(port):
            continue
        holder = port_holder(port)
        pid = holder.pid if holder else None
        if pid is not None and pid in own_pids:
            continue
        out[port] = ExternalServer(
            port, pid, holder.name if holder else None, holder.cmdline if holder else None
        )
    return out
