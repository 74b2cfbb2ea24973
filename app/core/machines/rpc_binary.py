"""llama.cpp's ``ggml-rpc-server``: found beside the llama-server the app runs (every
llama.cpp build that has RPC ships it in the same folder, as the wheel does), and the RPC
protocol version this machine's llama.cpp speaks, which a worker must match."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from pathlib import Path

from app.core.machines.rpc_protocol import Version

NAMES = ("ggml-rpc-server", "rpc-server")  # llama.cpp named it rpc-server until 2025
_STARTING = re.compile(rb"Starting RPC server v(\d+)\.(\d+)\.(\d+)")
# An address no system binds: the server prints its version, fails to bind and exits, so
# asking it the version never opens a port.
_UNBINDABLE = "256.0.0.1"
_versions: dict[tuple[str, float], Version | None] = {}


def rpc_server_path(llama_server: str) -> Path | None:
    """``ggml-rpc-server`` in the folder of ``llama_server`` (as given, then with links
    followed), or None when that build has none."""
    exe = ".exe" if sys.platform == "win32" else ""
    given = Path(llama_server).expanduser()
    folders = [given.parent]
    with contextlib.suppress(OSError):
        folders.append(given.resolve().parent)
    for folder in dict.fromkeys(folders):
        for name in NAMES:
            path = folder / f"{name}{exe}"
            if path.is_file():
                return path
    return None


def missing_text(llama_server: str) -> str:
    """Why no worker can be run, in words a person can act on."""
    return (
        f"No ggml-rpc-server beside {llama_server}: this llama.cpp build has no RPC. Use a "
        "build with it (the official releases and the Python wheel have it), or set "
        "LLAMA_SERVER_PATH to one."
    )


def version_in(output: bytes) -> Version | None:
    """The protocol version in a ggml-rpc-server's first lines ("Starting RPC server
    v4.0.3")."""
    m = _STARTING.search(output)
    return Version(int(m[1]), int(m[2]), int(m[3])) if m else None


async def local_version(rpc_server: Path, timeout: float = 10.0) -> Version | None:
    """The RPC protocol version of ``rpc_server`` (and so of the llama-server beside it),
    asked once per file: None when it does not say."""
    try:
        key = (str(rpc_server), rpc_server.stat().st_mtime)
    except OSError:
        return None
    if key in _versions:
        return _versions[key]
    try:
        proc = await asyncio.create_subprocess_exec(
            str(rpc_server),
            "--host",
            _UNBINDABLE,
            "--port",
            "1",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        out = b""
        await proc.wait()
    _versions[key] = version = version_in(out)
    return version
