"""The ggml-rpc client against the real worker (the wheel's ggml-rpc-server, started by the
app's own --rpc-worker), and against stand-ins for what this machine has no build of: a
worker of another protocol version, one of the older HELLO form, something else on the
port, a worker busy with another llama-server."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

import pytest

from app.config import Settings
from app.core.machines.rpc_binary import local_version, rpc_server_path, version_in
from app.core.machines.rpc_protocol import (
    CAPS_SIZE,
    Busy,
    OtherProtocol,
    Unreachable,
    Version,
    accepts,
    ask_worker,
)
from app.core.machines.workers import Workers, WorkerState
from tests.conftest import free_port
from tests.support.app import make_core, settings_for

GB = 1024**3


async def test_a_real_worker_says_its_version_devices_and_free_memory(
    rpc_worker, llama_server_bin
) -> None:
    w = rpc_worker()
    info = await ask_worker("127.0.0.1", w.port)
    local = await local_version(rpc_server_path(llama_server_bin))
    assert local is not None and info.version == local and info.version.major >= 3
    assert info.devices and all(0 < d.free <= d.total for d in info.devices)
    assert info.free == sum(d.free for d in info.devices)
    assert f"RPC protocol {info.version}" in w.line


async def test_the_local_version_is_asked_without_opening_a_port(llama_server_bin) -> None:
    binary = rpc_server_path(llama_server_bin)
    assert binary is not None and binary.name == "ggml-rpc-server"
    assert await local_version(binary) == await local_version(binary)
    assert version_in(b"...\nStarting RPC server v4.0.3\n") == Version(4, 0, 3)
    assert version_in(b"no version here") is None
    assert rpc_server_path("/nonexistent/llama-server") is None


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def message(payload: bytes) -> bytes:
    return struct.pack("<Q", len(payload)) + payload


async def read_request(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    cmd, size = struct.unpack("<BQ", await reader.readexactly(9))
    return cmd, await reader.readexactly(size)


def worker_of(version: tuple[int, int, int], *, caps: int = CAPS_SIZE, free=(8 * GB,)) -> Handler:
    """A stand-in speaking ggml-rpc's HELLO (of the form with ``caps`` bytes), DEVICE_COUNT
    and GET_DEVICE_MEMORY, as the protocol's source describes them."""

    async def handle(reader, writer) -> None:
        try:
            cmd, body = await read_request(reader)
            if cmd != 14 or len(body) != caps:
                return  # a real worker closes on a HELLO of the other form
            answer = bytes(version) + (bytes(1 + CAPS_SIZE) if caps else b"")
            writer.write(message(answer))
            while True:
                cmd, body = await read_request(reader)
                if cmd == 15:
                    writer.write(message(struct.pack("<I", len(free))))
                elif cmd == 11:
                    (i,) = struct.unpack("<I", body) if body else (0,)
                    writer.write(message(struct.pack("<QQ", free[i], 2 * free[i])))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle


async def test_both_hello_forms_and_every_device() -> None:
    new, port = await serve(worker_of((4, 1, 0), free=(2 * GB, 3 * GB)))
    old, port_old = await serve(worker_of((3, 0, 0), caps=0))
    try:
        info = await ask_worker("127.0.0.1", port)
        assert info.version == Version(4, 1, 0) and info.free == 5 * GB
        assert [d.total for d in info.devices] == [4 * GB, 6 * GB]
        info = await ask_worker("127.0.0.1", port_old)
        assert info.version == Version(3, 0, 0) and info.free == 8 * GB
    finally:
        new.close()
        old.close()


async def test_what_is_not_a_usable_worker_is_told_apart() -> None:
    async def closes(reader, writer) -> None:
        await reader.read(100)
        writer.close()

    async def silent(reader, writer) -> None:
        await asyncio.sleep(60)

    async def http(reader, writer) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    servers = [await serve(h) for h in (closes, silent, http)]
    try:
        (_, closing), (_, busy), (_, web) = servers
        with pytest.raises(OtherProtocol, match="closed the connection after HELLO"):
            await ask_worker("127.0.0.1", closing)
        with pytest.raises(Busy, match="serving another llama-server"):
            await ask_worker("127.0.0.1", busy, timeout=0.3)
        with pytest.raises(OtherProtocol, match="answered with a"):
            await ask_worker("127.0.0.1", web)
        with pytest.raises(Unreachable, match="connection refused"):
            await ask_worker("127.0.0.1", free_port())
        assert await accepts("127.0.0.1", busy) is None
        assert "connection refused" in (await accepts("127.0.0.1", free_port()) or "")
    finally:
        for s, _ in servers:
            s.close()


async def test_workers_are_shown_with_their_state_and_reason(rpc_worker, llama_server_bin) -> None:
    """A real worker online; one of another major version, one down and one busy shown as
    such with the reason; placement gets free memory only from the one it can use."""
    real = rpc_worker()
    other, other_port = await serve(worker_of((99, 0, 0)))

    async def silent(reader, writer) -> None:
        await asyncio.sleep(60)

    busy, busy_port = await serve(silent)
    down = free_port()
    addresses = [real.address, f"127.0.0.1:{other_port}", f"127.0.0.1:{down}"]
    addresses.append(f"127.0.0.1:{busy_port}")
    settings = settings_for(llama_server_bin, RPC_WORKERS=",".join(addresses))
    core = make_core(settings)
    try:
        workers: Workers = core.workers
        assert [s.state for s in workers.shown()] == [WorkerState.UNCHECKED] * 4
        found = {s.address: s for s in await workers.check()}
        ok = found[real.address]
        assert ok.state is WorkerState.ONLINE and ok.free > 0 and not ok.problem
        assert "online" in ok.text() and str(ok.version) in ok.text()
        odd = found[f"127.0.0.1:{other_port}"]
        assert odd.state is WorkerState.OTHER_PROTOCOL
        assert "99.0.0" in odd.reason and str(ok.version) in odd.reason, odd.reason
        gone = found[f"127.0.0.1:{down}"]
        assert gone.state is WorkerState.OFFLINE and "connection refused" in gone.text()
        assert found[f"127.0.0.1:{busy_port}"].state is WorkerState.BUSY
        room = {w.address: w for w in await workers.room(None)}
        assert room[real.address].free == ok.free and not room[real.address].problem
        assert all(w.free == 0 and w.problem for a, w in room.items() if a != real.address)
    finally:
        other.close()
        busy.close()
        await core.stop()


def test_worker_addresses_are_checked_as_they_are_typed() -> None:
    s = Settings(_env_file=None, RPC_WORKERS=" 10.0.0.2:50052 ,[::1]:50053,10.0.0.2:50052")
    assert s.RPC_WORKERS == "10.0.0.2:50052,[::1]:50053"
    for bad in ("10.0.0.2", "host:0", "::1:50052", "h:port"):
        with pytest.raises(ValueError, match="host:port|IPv6"):
            Settings(_env_file=None, RPC_WORKERS=bad)
