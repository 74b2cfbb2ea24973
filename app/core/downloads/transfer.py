"""Bring one file's bytes into its part file, resuming what is there, then check its SHA-256.

Why not ``hf_hub_download``: since huggingface_hub 1.x it downloads into a temporary file
unique to each call and deletes it when the call fails or stops, so nothing is left to
resume after a cancel, a quit or a crash; and it moves the file into its final place before
the app could check it, where the model scan would list it. Its lower-level ``http_get``
resumes only within one call, reads 10 MiB at a time and sleeps between retries, so a
cancel waits. So the library does the HTTP here (the HEAD with its redirect rules and
errors, its session, token and timeouts: ``HubClient``), and this module only keeps the
bytes: a ``Range`` request from the part file's size, chunks as they arrive, a cancel
checked between chunks (and the connection closed to end a stalled read).

Blocking: the download service runs these in threads.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.downloads.refs import FileMeta, HubError
from app.core.units import size_text

if TYPE_CHECKING:
    from app.core.downloads.hub import HubClient

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # bytes of this file present so far


class Cancelled(Exception):
    """The download was cancelled or paused; what is in the part file stays."""


class ChecksumError(Exception):
    """The bytes are not the ones the hub published; the message says what was done."""


class Cancel:
    """A cancel flag that also ends a read that is waiting for data (by closing the
    connection it waits on)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None  # the httpx2 response being read

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def set(self) -> None:
        self._event.set()
        with self._lock:
            response = self._response
        if response is not None:
            _interrupt(response)

    def watch(self, response: Any) -> None:
        with self._lock:
            self._response = response


def _interrupt(response: Any) -> None:
    """End a read blocked on ``response``'s connection, from another thread: shutting the
    socket down wakes ``recv`` at once (closing it does not)."""
    try:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError, KeyError):  # closed already, or no socket to reach
        log.debug("Interrupting a download's connection failed", exc_info=True)


def copy_from_cache(cached: Path, part: Path) -> None:
    """A file the Hugging Face cache already holds: linked (same disk) or copied to
    ``part``, then checked like a download."""
    part.parent.mkdir(parents=True, exist_ok=True)
    part.unlink(missing_ok=True)
    try:
        os.link(cached.resolve(), part)
    except OSError:
        shutil.copyfile(cached, part)


def fetch(
    hub: HubClient,
    meta: FileMeta,
    part: Path,
    size: int,
    progress: Progress,
    cancel: Cancel,
    *,
    retries: int = 3,
    backoff: float = 1.0,
) -> str:
    """Bring ``part`` to ``size`` bytes from ``meta``'s location, from where it stands;
    the SHA-256 of its bytes, hashed as they arrive (what an earlier try left is hashed
    first), so checking it needs no second read of the file.

    A broken connection is retried ``retries`` times (``backoff`` s, doubling), resuming;
    then ``HubError`` says how far it got (the part stays, the next try resumes).
    ``Cancelled`` when ``cancel`` is set. ``OSError`` for a disk that is full or gone."""
    import httpx2  # huggingface_hub's HTTP library: loaded with it, when a download starts

    part.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    digest = hashlib.sha256()
    hashed = 0  # bytes of the part file in ``digest``
    while True:
        have = part.stat().st_size if part.exists() else 0
        if have > size:  # not this file's beginning: start again
            part.unlink()
            have = 0
        progress(have)
        if hashed != have:  # bytes from an earlier run (or a write that failed midway)
            digest, hashed = _sha256_prefix(part, have, cancel), have
        if have == size:
            return digest.hexdigest()
        if cancel.is_set():
            raise Cancelled()
        try:
            with hub.stream(meta, have) as response:
                cancel.watch(response)
                if have and response.status_code != 206:
                    have = 0  # the server sent the whole file: start over
                    digest, hashed = hashlib.sha256(), 0
                with part.open("r+b" if part.exists() else "wb") as out:
                    out.seek(have)
                    out.truncate()
                    for chunk in response.iter_bytes():
                        if cancel.is_set():
                            raise Cancelled()
                        out.write(chunk)
                        digest.update(chunk)
                        have += len(chunk)
                        hashed = have
                        failures = 0  # it moves: only failures in a row count
                        progress(have)
            if have != size:
                raise httpx2.RemoteProtocolError(f"the answer ended at byte {have} of {size}")
            return digest.hexdigest()
        except Cancelled:
            raise
        except Exception as e:
            if cancel.is_set():  # the read ended because the cancel closed the connection
                raise Cancelled() from None
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                raise OSError(
                    e.errno,
                    f"The disk holding {part.parent} is full; free some space and get it again "
                    "(what arrived is kept)",
                ) from None
            if not isinstance(e, (httpx2.TransportError, httpx2.StreamError)):
                raise
            failures += 1
            if failures > retries:
                raise HubError(
                    f"The connection to the hub broke off at {size_text(have)} of {size_text(size)} of "
                    f"{part.name.removesuffix('.part')} ({e}); what arrived is kept: get it "
                    "again to resume.",
                    "offline",
                ) from None
            log.warning("Download of %s interrupted (%s); resuming", part.name, e)
            if cancel.wait(backoff * 2 ** (failures - 1)):
                raise Cancelled() from None
        finally:
            cancel.watch(None)


def _sha256_prefix(path: Path, n: int, cancel: Cancel) -> Any:
    """A SHA-256 of the first ``n`` bytes of ``path``, ready for more."""
    h = hashlib.sha256()
    if n:
        with path.open("rb") as f:
            while n > 0 and (block := f.read(min(4 << 20, n))):
                if cancel.is_set():
                    raise Cancelled()
                h.update(block)
                n -= len(block)
    return h


def sha256_file(path: Path, cancel: Cancel) -> str:
    """The file's SHA-256, read in 4 MiB blocks; ``Cancelled`` when cancelled meanwhile."""
    return _sha256_prefix(path, path.stat().st_size, cancel).hexdigest()
