"""``familylog-tray --rpc-worker [--host H] [--port P]``: share this machine's GPU with other
machines: llama.cpp's ggml-rpc-server, supervised by the app (started again when it exits on
its own), until SIGINT or SIGTERM. Its other settings (devices, cache, and whether a network
address is allowed) are the ``RPC_WORKER_*`` settings."""

from __future__ import annotations

import asyncio
import sys

from app.cli.stop_signals import stop_on_signals
from app.config import Settings
from app.core.discovery.server import resolve_server_path
from app.core.machines.shared_worker import SharedWorker, ShareState
from app.exit_codes import ExitCode
from app.paths import AppPaths
from app.settings_machines import NO_AUTH


async def run_rpc_worker(
    settings: Settings,
    paths: AppPaths,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: asyncio.Event | None = None,
) -> int:
    changes: dict[str, object] = {"RPC_WORKER_ENABLED": True}
    if host is not None:
        changes["RPC_WORKER_HOST"] = host
    if port is not None:
        changes["RPC_WORKER_PORT"] = port
    s = settings.model_copy(update=changes)
    worker = SharedWorker(lambda: s, lambda: resolve_server_path(s), paths.log_dir)
    with stop_on_signals() as stop:
        try:
            status = await worker.turn_on()
            if status.state is not ShareState.RUNNING:
                print(f"familylog-tray: {status.text()}", file=sys.stderr)
                return ExitCode.USAGE if "RPC_WORKER" in status.error else ExitCode.FAILED
            print(
                f"familylog-tray: {status.text()}, RPC protocol {status.version} (PID {status.pid})."
                f" {NO_AUTH}. Ctrl+C stops it. Log: {worker.log_path}",
                flush=True,
            )
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            await worker.turn_off()
    return ExitCode.OK
