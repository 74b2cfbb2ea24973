"""One running app per app home: a second launch forwards its request and exits.

Protocol: the client sends one line and reads one line back. The request is the verb
("show"), or a JSON object ``{"verb": "load", "args": {"key": ..., "ctx": ...}}`` for a
verb with arguments. The reply is the running instance's answer, "ok: <message>" or
"error: <message>" (``Reply``). A handler may return the reply, or an awaitable of it (a
load that takes minutes): the reply is written when it is done, and the client waits as
long as it was told to. The server name is derived from the app home, so instances with
different ``FAMILYLOG_TRAY_HOME`` never meet.

The launcher listens before it opens any window (``InstanceServer.listen`` is the lock):
a second launch while the set-up dialog is open is answered, not left waiting.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from app.paths import AppPaths

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger(__name__)

MAX_LINE = 4096


def server_name(paths: AppPaths) -> str:
    digest = hashlib.sha256(str(paths.config_dir).encode("utf-8")).hexdigest()[:16]
    return f"familylog-tray-{digest}"


@dataclass(frozen=True)
class Reply:
    """The running instance's answer: success, and a message for a person."""

    ok: bool
    message: str

    @classmethod
    def parse(cls, line: str) -> Reply:
        head, sep, rest = line.partition(":")
        if sep and head in ("ok", "error"):
            return cls(head == "ok", rest.strip())
        return cls(bool(line.strip()), line.strip() or "empty reply")  # a verb's plain answer

    def line(self) -> str:
        return f"{'ok' if self.ok else 'error'}: {self.message}"


class NoAnswerError(TimeoutError):
    """The running instance took the request but did not answer in time."""


def encode_request(verb: str, args: dict[str, Any] | None = None) -> str:
    return json.dumps({"verb": verb, "args": args}) if args else verb


def decode_request(line: str) -> tuple[str, dict[str, Any]]:
    """``(verb, args)`` from a request line; a malformed JSON request gives verb ``""``."""
    line = line.strip()
    if not line.startswith("{"):
        return line, {}
    try:
        obj = json.loads(line)
    except ValueError:
        return "", {}
    if not isinstance(obj, dict) or not isinstance(obj.get("verb"), str):
        return "", {}
    args = obj.get("args") or {}
    return obj["verb"], args if isinstance(args, dict) else {}


def _exchange(
    line: str, paths: AppPaths, timeout: float, reply_timeout: float | None
) -> str | None:
    ms = max(1, int(timeout * 1000))
    reply_ms = max(1, int((reply_timeout if reply_timeout is not None else 5 * timeout) * 1000))
    sock = QLocalSocket()
    sock.connectToServer(server_name(paths))
    if not sock.waitForConnected(ms):
        return None
    try:
        sock.write((line + "\n").encode("utf-8"))
        if not sock.waitForBytesWritten(ms):
            return None
        data = b""
        while b"\n" not in data and len(data) < MAX_LINE:
            if not sock.waitForReadyRead(reply_ms):  # the handler may load a model first
                break
            data += bytes(sock.readAll().data())
        if not data:
            if sock.state() == QLocalSocket.LocalSocketState.ConnectedState:
                raise NoAnswerError(f"no answer within {reply_ms / 1000:g} s")
            return None
        return data.decode("utf-8", errors="replace").strip()
    finally:
        sock.disconnectFromServer()


def request(
    verb: str,
    paths: AppPaths,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 1.0,
    reply_timeout: float | None = None,
) -> Reply | None:
    """Send a request to the running instance; its ``Reply``, or None when none listens.

    ``timeout`` bounds connecting and sending; ``reply_timeout`` (default 5 × ``timeout``)
    how long the answer may take (``NoAnswerError`` past it). Works before any
    QApplication exists (blocking waits, no event loop needed).
    """
    line = _exchange(encode_request(verb, args), paths, timeout, reply_timeout)
    return Reply.parse(line) if line is not None else None


def forward(verb: str, paths: AppPaths, timeout: float = 1.0) -> str | None:
    """Send ``verb`` to the running instance; its reply line, or None when none answers."""
    try:
        return _exchange(verb, paths, timeout, None)
    except NoAnswerError:
        return None


ReplyText = str | Awaitable[str]
Handler = Callable[..., ReplyText]


class InstanceServer(QObject):
    """Listens for forwarded verbs and answers each with its handler's reply."""

    received = Signal(str)

    def __init__(self, paths: AppPaths, handlers: dict[str, Handler], parent=None) -> None:
        super().__init__(parent)
        self.handlers = handlers  # verb -> callable returning the reply text; pluggable
        self.name = server_name(paths)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytes] = {}
        self._pending: set[asyncio.Task[str]] = set()
        self.other_instance = False  # set by listen() when another instance holds the name

    @property
    def listening(self) -> bool:
        return self._server.isListening()

    def listen(self) -> bool:
        """Take the single-instance lock; False when another instance holds it
        (``other_instance``) or the channel is unavailable."""
        if self._server.isListening():
            return True
        # Ask first: with UserAccessOption, Qt listens on a temporary path and renames it
        # over the name, so listen() alone would take a live instance's name away.
        probe = QLocalSocket()
        probe.connectToServer(self.name)
        if probe.waitForConnected(500):
            probe.disconnectFromServer()
            self.other_instance = True
            log.info("Another instance listens on %s", self.name)
            return False
        if self._server.listen(self.name):
            return True
        # A socket file left by a crashed instance: nobody answered, so remove it.
        QLocalServer.removeServer(self.name)
        ok = self._server.listen(self.name)
        if not ok:
            log.warning("Single-instance channel unavailable: %s", self._server.errorString())
        return ok

    def close(self) -> None:
        self._server.close()

    def dispatch(self, line: str) -> ReplyText:
        """The reply to one request line (or an awaitable of it)."""
        verb, args = decode_request(line)
        self.received.emit(verb)
        handler = self.handlers.get(verb)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return f"error: unknown request {verb!r}; known: {known}"
        try:
            inspect.signature(handler).bind(**args)
        except TypeError as e:
            return f"error: {verb}: bad arguments {sorted(args)}: {e}"
        try:
            reply = handler(**args)
        except Exception as e:
            log.exception("Handling %r failed", verb)
            return f"error: {verb} failed: {e}"
        if inspect.isawaitable(reply):
            return self._guarded(verb, reply)
        return reply

    @staticmethod
    async def _guarded(verb: str, reply: Awaitable[str]) -> str:
        try:
            return await reply
        except Exception as e:
            log.exception("Handling %r failed", verb)
            return f"error: {verb} failed: {e}"

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            self._buffers[sock] = b""
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(lambda s=sock: self._drop(s))
            if sock.bytesAvailable():  # the request may have arrived before we connected
                self._read(sock)

    def _read(self, sock: QLocalSocket) -> None:
        data = self._buffers.get(sock, b"") + bytes(sock.readAll().data())
        if b"\n" not in data and len(data) < MAX_LINE:
            self._buffers[sock] = data
            return
        self._buffers[sock] = b""
        line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        reply = self.dispatch(line)
        if isinstance(reply, str):
            self._answer(sock, reply)
            return
        import asyncio  # not at import: the launch imports this module before the icon

        task = asyncio.ensure_future(reply)
        self._pending.add(task)

        def done(t: asyncio.Task[str]) -> None:
            self._pending.discard(t)
            text = "error: cancelled (the app is quitting)" if t.cancelled() else t.result()
            self._answer(sock, text)

        task.add_done_callback(done)

    def _answer(self, sock: QLocalSocket, reply: str) -> None:
        if (
            not shiboken6.isValid(sock)
            or sock.state() != QLocalSocket.LocalSocketState.ConnectedState
        ):
            log.info("The requester left before the answer: %s", reply)
            return
        sock.write((reply.replace("\n", " ") + "\n").encode("utf-8"))
        sock.flush()
        sock.disconnectFromServer()

    def _drop(self, sock: QLocalSocket) -> None:
        if self._buffers.pop(sock, None) is not None:
            sock.deleteLater()
