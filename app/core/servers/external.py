"""Servers on the app's ports that the app did not start: shown, never killed."""

from __future__ import annotations

from collections.abc import Iterable

import psutil

from app.core.servers.ports import PortProcess, port_holder, port_is_free
from app.platform.process_groups import mark_of

ExternalServer = PortProcess  # a port's process that the app did not start


def _marked(pid: int, marks: set[str]) -> bool:
    try:
        return mark_of(psutil.Process(pid)) in marks
    except psutil.Error:
        return False


def find_external(
    ports: Iterable[int], own_pids: set[int], own_marks: set[str] | None = None
) -> dict[int, ExternalServer]:
    """The configured ports held by a process outside ``own_pids`` that carries none of
    ``own_marks`` (a llama-server a wrapper script started for the app is the app's)."""
    out: dict[int, ExternalServer] = {}
    for port in sorted(set(ports)):
        if port_is_free(port):
            continue
        holder = port_holder(port)
        pid = holder.pid if holder else None
        if pid is not None and (pid in own_pids or (own_marks and _marked(pid, own_marks))):
            continue
        out[port] = holder or PortProcess(port, None, None, None)
    return out
