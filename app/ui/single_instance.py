"""One running app per app home: a second launch forwards its request and exits.

Protocol: the client sends one line (the verb) and reads one line back, the running
instance's reply ("ok: ..." or "error: ..."). The server name is derived from the app home,
so instances with different ``FAMILYLOG_TRAY_HOME`` never meet.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from app.paths import AppPaths

log = logging.getLogger(__name__)

MAX_LINE = 4096


def server_name(paths: AppPaths) -> str:
    digest = hashlib.sha256(str(paths.config_dir).encode("utf-8")).hexdigest()[:16]
    return f"familylog-tray-{digest}"


def forward(verb: str, paths: AppPaths, timeout: float = 1.0) -> str | None:
    """Send ``verb`` to the running instance; its reply, or None when none answers.

    Works before any QApplication exists (blocking waits, no event loop needed).
    """
    ms = max(1, int(timeout * 1000))
    sock = QLocalSocket()
    sock.connectToServer(server_name(paths))
    if not sock.waitForConnected(ms):
        return None
    try:
        sock.write((verb + "\n").encode("utf-8"))
        if not sock.waitForBytesWritten(ms):
            return None
        data = b""
        while b"\n" not in data and len(data) < MAX_LINE:
            if not sock.waitForReadyRead(ms * 5):  # the handler may open a window first
                break
            data += bytes(sock.readAll().data())
        if not data:
            return None
        return data.decode("utf-8", errors="replace").strip()
    finally:
        sock.disconnectFromServer()


Handler = Callable[[], str]


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

    def listen(self) -> bool:
        if self._server.listen(self.name):
            return True
        # A socket file left by a crashed instance: nobody answered forward(), so remove it.
        QLocalServer.removeServer(self.name)
        ok = self._server.listen(self.name)
        if not ok:
            log.warning("Single-instance channel unavailable: %s", self._server.errorString())
        return ok

    def close(self) -> None:
        self._server.close()

    def dispatch(self, verb: str) -> str:
        verb = verb.strip()
        self.received.emit(verb)
        handler = self.handlers.get(verb)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return f"error: unknown request {verb!r}; known: {known}"
        try:
            return handler()
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
        verb = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        reply = self.dispatch(verb)
        sock.write((reply.replace("\n", " ") + "\n").encode("utf-8"))
        sock.flush()
        sock.disconnectFromServer()

    def _drop(self, sock: QLocalSocket) -> None:
        if self._buffers.pop(sock, None) is not None:
            sock.deleteLater()
