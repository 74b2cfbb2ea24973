"""The run's main process, with its exit seen the moment it happens.

asyncio's ``Process.wait()`` (Python 3.11) returns only once every pipe of the process is
closed, and a child the run started (``uv`` starts ``python``; ``cmd &``) holds the output
pipe after the main process is gone. ``spawn`` gives, besides the process, a future done
when the main process itself exits; its exit code is then ``proc.returncode``.
"""

from __future__ import annotations

import asyncio
import asyncio.subprocess as aio_subprocess
from pathlib import Path
from typing import Any


class _ExitAware(aio_subprocess.SubprocessStreamProtocol):
    """asyncio's own protocol for a subprocess with streams, plus the exit as a future."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def spawn(
    argv: list[str], *, cwd: Path, env: dict[str, str], **kwargs: Any
) -> tuple[aio_subprocess.Process, asyncio.Future[None]]:
    """Start ``argv`` with stdin from /dev/null and stdout and stderr on one pipe (their
    order kept); the process, and a future done when it exits (whoever holds the pipe)."""
    loop = asyncio.get_running_loop()
    protocol: _ExitAware | None = None

    def factory() -> _ExitAware:
        nonlocal protocol
        protocol = _ExitAware(limit=2**16, loop=loop)
        return protocol

    transport, _ = await loop.subprocess_exec(
        factory,
        *argv,
        cwd=cwd,
        env=env,
        stdin=aio_subprocess.DEVNULL,
        stdout=aio_subprocess.PIPE,
        stderr=aio_subprocess.STDOUT,
        **kwargs,
    )
    assert protocol is not None
    return aio_subprocess.Process(transport, protocol, loop), protocol.exited
