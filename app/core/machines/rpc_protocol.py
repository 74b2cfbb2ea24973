"""A tiny client of llama.cpp's RPC protocol (ggml-rpc), for three of its requests only:
HELLO (the worker's protocol version), DEVICE_COUNT and GET_DEVICE_MEMORY (each device's
free and total memory). Enough to tell whether a worker is up, speaks the protocol of this
machine's llama-server, and how much room it has; the model itself is llama-server's
business.

The wire format (ggml/src/ggml-rpc/ggml-rpc.cpp): a request is ``| command (1 byte) | size
(8 bytes, little-endian) | payload |``, an answer ``| size (8 bytes) | payload |``; the first
request on a connection must be HELLO. Protocol 4 and later send 24 bytes of transport
capabilities with HELLO (all zero: plain TCP) and get ``major, minor, patch, padding`` and
the server's 24 bytes back; protocol 3 and earlier send nothing and get the three version
bytes. A server closes the connection at once on a HELLO of the other form, so the older
form is tried on a second connection. Before protocol 3 a worker had one device, and its
memory request had no device number.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

HELLO = 14
DEVICE_COUNT = 15
GET_DEVICE_MEMORY = 11
CAPS_SIZE = 24  # transport capabilities sent with HELLO since protocol 4
TIMEOUT = 3.0  # seconds for the whole exchange with one worker


class RpcError(Exception):
    """A worker could not be asked; the message says why, for a person."""


class Unreachable(RpcError):
    """Nothing answers at the address (refused, timed out, no route)."""


class OtherProtocol(RpcError):
    """Something answers, but not ggml-rpc as this client speaks it."""


class Busy(RpcError):
    """The worker takes the connection but answers nothing: it serves one client at a time,
    and another llama-server has it."""


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def works_with(self, local: Version) -> bool:
        """llama-server's own rule: the same major version, a minor one not newer than its."""
        return self.major == local.major and self.minor <= local.minor


@dataclass(frozen=True)
class Device:
    index: int
    free: int  # bytes
    total: int


@dataclass(frozen=True)
class WorkerInfo:
    version: Version
    devices: tuple[Device, ...]

    @property
    def free(self) -> int:
        return sum(d.free for d in self.devices)

    @property
    def total(self) -> int:
        return sum(d.total for d in self.devices)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def ask(self, command: int, payload: bytes = b"") -> bytes:
        self.writer.write(struct.pack("<BQ", command, len(payload)) + payload)
        await self.writer.drain()
        head = await self.reader.readexactly(8)
        (size,) = struct.unpack("<Q", head)
        if size > 4096:  # none of our answers is near this: not ggml-rpc
            raise OtherProtocol(f"answered with a {size}-byte message")
        return await self.reader.readexactly(size)

    def close(self) -> None:
        self.writer.close()


async def _connect(host: str, port: int) -> _Connection:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        raise Unreachable("connection refused: no worker listens there") from None
    except OSError as e:
        raise Unreachable(e.strerror or str(e) or type(e).__name__) from None
    return _Connection(reader, writer)


async def accepts(host: str, port: int, timeout: float = TIMEOUT) -> str | None:
    """None when something accepts connections at the address; else why not. (A worker
    that serves a llama-server cannot be asked anything, but still accepts.)"""
    try:
        async with asyncio.timeout(timeout):
            conn = await _connect(host, port)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Unreachable as e:
        return str(e)
    conn.close()
    return None


async def _hello(host: str, port: int, connected: list[bool]) -> tuple[_Connection, Version]:
    """A connection past HELLO, in the first form the worker takes, and its version."""
    for caps in (CAPS_SIZE, 0):
        conn = await _connect(host, port)
        connected[:] = [True]
        try:
            answer = await conn.ask(HELLO, bytes(caps))
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            conn.close()
            continue  # it closed on this form of HELLO: try the other
        except BaseException:
            conn.close()
            raise
        if len(answer) not in (3, 4 + CAPS_SIZE):
            conn.close()
            raise OtherProtocol(f"answered HELLO with {len(answer)} bytes")
        return conn, Version(answer[0], answer[1], answer[2])
    raise OtherProtocol(
        "closed the connection after HELLO: not a ggml-rpc-server, or one of a protocol "
        "version this app does not know"
    )


async def _ask(host: str, port: int, connected: list[bool]) -> WorkerInfo:
    conn, version = await _hello(host, port, connected)
    try:
        if version.major < 3:  # one device, and no device number in the request
            free, total = struct.unpack("<QQ", await conn.ask(GET_DEVICE_MEMORY))
            return WorkerInfo(version, (Device(0, free, total),))
        (count,) = struct.unpack("<I", await conn.ask(DEVICE_COUNT))
        devices = []
        for i in range(min(count, 64)):
            free, total = struct.unpack(
                "<QQ", await conn.ask(GET_DEVICE_MEMORY, struct.pack("<I", i))
            )
            devices.append(Device(i, free, total))
        return WorkerInfo(version, tuple(devices))
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError, struct.error):
        raise OtherProtocol(f"speaks protocol {version} but broke off a memory request") from None
    finally:
        conn.close()


async def ask_worker(host: str, port: int, timeout: float = TIMEOUT) -> WorkerInfo:
    """The worker's protocol version and devices; ``Unreachable``, ``Busy`` or
    ``OtherProtocol`` (all ``RpcError``) with the reason otherwise. Never waits longer than
    ``timeout``."""
    connected = [False]
    try:
        async with asyncio.timeout(timeout):
            return await _ask(host, port, connected)
    except TimeoutError:
        if connected[0]:
            raise Busy(
                "takes connections but answers nothing: it is serving another llama-server "
                "(a worker serves one at a time)"
            ) from None
        raise Unreachable(f"no answer within {timeout:g} s") from None
