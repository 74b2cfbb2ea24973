"""Servers on the app's ports that the app did not start: shown, never killed."""

from __future__ import annotations

from collections.abc import Iterable

from app.core.servers.ports import PortProcess, port_holder, port_is_free

ExternalServer = PortProcess  # a port's process that the app did not start


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
        out[port] = holder or PortProcess(port, None, None, None)
    return out
