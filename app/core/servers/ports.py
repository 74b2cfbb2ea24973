"""Is a TCP port free on loopback, and if not, who holds it."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class PortProcess:
    """A process listening on a port (the one type for "who holds this port")."""

    port: int
    pid: int | None
    name: str | None
    cmdline: str | None

    @property
    def is_llama_server(self) -> bool:
        return "llama-server" in f"{self.name or ''} {self.cmdline or ''}"

    def describe(self) -> str:
        if self.pid is None:
            return "another program (its process could not be identified)"
        what = "llama-server" if self.is_llama_server else (self.name or "process")
        return f"{what} (PID {self.pid})"


class PortInUseError(RuntimeError):
    def __init__(self, port: int, holder: PortProcess | None) -> None:
        self.port = port
        self.holder = holder
        who = holder.describe() if holder else "another program"
        super().__init__(
            f"Port {port} is already in use by {who}. "
            f"Stop that program or choose another port in the settings."
        )


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if sys.platform.startswith("win"):
            s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_EXCLUSIVEADDRUSE", 0xFFFFFFFB), 1)
        else:
            # llama-server sets SO_REUSEADDR too, so TIME_WAIT leftovers do not count as taken.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1)):
                return False
            raise
    return True


def port_holder(port: int) -> PortProcess | None:
    """The process listening on ``port``, where psutil can tell."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, PermissionError, OSError):
        return PortProcess(port, None, None, None)
    for c in conns:
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN:
            if c.pid is None:
                return PortProcess(port, None, None, None)
            try:
                p = psutil.Process(c.pid)
                return PortProcess(port, c.pid, p.name(), " ".join(p.cmdline()))
            except psutil.Error:
                return PortProcess(port, c.pid, None, None)
    return None


def ensure_port_free(port: int) -> None:
    if not port_is_free(port):
        raise PortInUseError(port, port_holder(port))


async def wait_port_free(port: int, timeout: float = 5.0) -> bool:
    """Try to bind every 2 ms until the port is free again (the old server has exited
    already; the port follows within a few ms, so no back-off is worth its cost)."""
    deadline = time.monotonic() + timeout
    while True:
        if port_is_free(port):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.002)
