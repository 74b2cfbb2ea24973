"""Fixtures for the other-machines tests: llama.cpp RPC workers started by the app's own
``familylog-tray --rpc-worker``, and a GPU whose free memory the test chooses."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from app.core.gpu.snapshot import GpuSnapshot
from tests.conftest import free_port
from tests.support.app import run_app


@dataclass
class RpcWorker:
    """``familylog-tray --rpc-worker`` running on ``port``."""

    proc: subprocess.Popen
    port: int
    line: str  # what it printed when it was ready

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Gone at once, as a machine that is switched off: the command and its worker."""
        self.proc.kill()  # its ggml-rpc-server dies with it (the kernel's parent-death signal)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


@pytest.fixture
def rpc_worker(llama_server_bin: str) -> Iterator[Callable[..., RpcWorker]]:
    """``rpc_worker()`` → a worker on a free loopback port, once it serves; all stopped
    at the end."""
    started: list[RpcWorker] = []

    def start(*args: str) -> RpcWorker:
        port = free_port()
        env = {"LLAMA_SERVER_PATH": llama_server_bin, "PYTHONUNBUFFERED": "1"}
        p = run_app("--rpc-worker", "--port", str(port), *args, env=env)
        line = p.stdout.readline()
        w = RpcWorker(p, port, line)
        started.append(w)
        assert "Sharing this GPU" in line, (line, p.stderr.read() if p.poll() else "")
        return w

    yield start
    for w in started:
        w.stop()
        w.proc.stdout.close()
        w.proc.stderr.close()


class FreeGpu:
    """A GPU with ``free`` bytes free, whatever runs (placement's injected free memory)."""

    def __init__(self, free: int) -> None:
        self.free = free

    def free_bytes(self) -> int:
        return self.free

    def probe(self, pids=()) -> GpuSnapshot:
        return GpuSnapshot("none")

    def close(self) -> None:
        pass
