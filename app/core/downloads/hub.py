"""The Hugging Face Hub through ``huggingface_hub``: search, a repository's files, a file's
metadata, the header of a remote GGUF by ranged requests, and the stream of its bytes.

The library does the HTTP: its session (proxies, user agent), its token (``HF_TOKEN``, or
``hf auth login``'s file; the app's own ``HF_TOKEN`` setting first), ``HF_ENDPOINT``, its
timeouts (``HF_HUB_DOWNLOAD_TIMEOUT``, ``HF_HUB_ETAG_TIMEOUT``), ``HF_HUB_OFFLINE``, its
redirect rules and its error types. Every call blocks: the download service runs them in
threads. Failures are ``HubError`` with a sentence that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import get_hf_file_metadata, hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from app import __version__
from app.core.discovery.gguf_header import GgufHeader, GgufTruncatedError, parse_header
from app.core.downloads.files import RemoteFile, RepoFiles, group_files
from app.core.downloads.refs import FileMeta, HubError, RepoHit, endpoint, offline, repo_url

HEADER_FIRST_READ = 2 << 20  # most headers (32k-150k token vocabularies) fit in 1-7 MiB
HEADER_MAX = 256 << 20
TokenSource = Callable[[], str | None]
AGENT = {"library_name": "familylog-tray", "library_version": __version__}  # the user agent


def _message(e: HfHubHTTPError) -> str:
    server = getattr(e, "server_message", None) or ""
    return server.strip().splitlines()[0] if server.strip() else str(e).strip().splitlines()[0]


def translate(e: BaseException, repo: str, path: str | None = None) -> HubError:
    """One ``HubError`` with what to do, for whatever the library or the network raised."""
    where = endpoint()
    host = urlparse(where).netloc or where
    if isinstance(e, HubError):
        return e
    if isinstance(e, OfflineModeIsEnabled) or (isinstance(e, ConnectionError) and offline()):
        return HubError("Downloads are off: HF_HUB_OFFLINE is set in the environment.", "offline")
    if isinstance(e, GatedRepoError):
        status = e.response.status_code if e.response is not None else None
        if status == 403:
            return HubError(
                f"{repo} is gated and the account of your HF_TOKEN has not been given access "
                f"yet: accept its licence at {repo_url(repo)} (logged in as that account), "
                "then try again.",
                "gated",
                403,
            )
        return HubError(
            f"{repo} is gated: accept its licence at {repo_url(repo)} while logged in, create a "
            f"read token at {where}/settings/tokens, set it as HF_TOKEN (Settings, or the "
            "environment), then try again.",
            "gated",
            status or 401,
        )
    if isinstance(e, RepositoryNotFoundError):
        return HubError(
            f"{repo} was not found on {host}, or it is private: check the name; for a private "
            "repository set HF_TOKEN to a token that can read it.",
            "not_found",
            404,
        )
    if isinstance(e, (RemoteEntryNotFoundError, RevisionNotFoundError)):
        what = f"{path} is" if path else "That revision is"
        return HubError(f"{what} not in {repo} (any more).", "missing_file", 404)
    if isinstance(e, HfHubHTTPError):
        status = e.response.status_code if e.response is not None else None
        if status == 401:
            return HubError(
                f"{host} refused the HF_TOKEN set here ({_message(e)}): set a valid read token "
                f"from {where}/settings/tokens.",
                "denied",
                401,
            )
        if status == 403:
            return HubError(
                f"{host} refused access to {repo} ({_message(e)}): check that your HF_TOKEN "
                "may read it.",
                "denied",
                403,
            )
        if status == 429:
            return HubError(
                f"{host} asks to slow down (too many requests): try again in a few minutes.",
                "rate_limited",
                429,
            )
        return HubError(f"{host} answered {status}: {_message(e)}", "hub_error", status)
    if isinstance(e, (httpx2.ConnectError, httpx2.ConnectTimeout)):
        reason = str(e).strip() or type(e).__name__
        return HubError(f"No network: cannot reach {host} ({reason}).", "offline")
    if isinstance(e, httpx2.TimeoutException):
        return HubError(f"No answer from {host} in time: the network is slow or down.", "offline")
    if isinstance(e, httpx2.TransportError):
        return HubError(f"The connection to {host} failed: {e}.", "offline")
    if isinstance(e, ValueError):
        return HubError(f"{host} sent an answer that cannot be read: {e}.", "hub_error")
    return HubError(f"Talking to {host} failed: {e}", "hub_error")


class HubClient:
    """The app's calls to the hub. ``token``: the app's ``HF_TOKEN`` setting (empty or None:
    the library's own, from the environment or ``hf auth login``)."""

    def __init__(self, token: TokenSource | None = None) -> None:
        self._token_source = token

    def token(self) -> str | None:
        value = self._token_source() if self._token_source else None
        return value or None

    def _get(self, path: str, params: dict[str, str]) -> Any:
        """``GET {HF_ENDPOINT}{path}``: its JSON, through the library's session, headers
        and errors. (``HfApi`` would do the same; importing it costs most of a second more of
        CPU than the rest of the library, while the set-up window is open.)"""
        r = get_session().get(
            f"{endpoint()}{path}",
            params=params,
            headers=build_hf_headers(token=self.token(), **AGENT),
            timeout=constants.HF_HUB_ETAG_TIMEOUT,
        )
        hf_raise_for_status(r)
        return r.json()

    def _guard(self) -> None:
        if offline():
            raise HubError(
                "Downloads are off: HF_HUB_OFFLINE is set in the environment.", "offline"
            )

    # ── Finding ───────────────────────────────────────────────────────────────
    def search(self, query: str, limit: int = 40) -> list[RepoHit]:
        """GGUF repositories whose name contains ``query``, most downloaded first: one page of
        ``GET /api/models`` (``HfApi.list_models`` retries a failed connection for ~20 s
        before saying there is no network)."""
        self._guard()
        params = {"filter": "gguf", "sort": "downloads", "direction": "-1", "limit": str(limit)}
        if query.strip():
            params["search"] = query.strip()
        try:
            found = self._get("/api/models", params)
            return [
                RepoHit(
                    repo=str(m["id"]),
                    downloads=int(m.get("downloads") or 0),
                    likes=int(m.get("likes") or 0),
                    gated=bool(m.get("gated")),
                    last_modified=m.get("lastModified"),
                )
                for m in found[:limit]
            ]
        except Exception as e:
            raise translate(e, query) from None

    def repo_files(self, repo: str) -> RepoFiles:
        """``repo``'s GGUF models at its newest commit, with sizes and SHA-256s."""
        self._guard()
        try:  # HfApi.model_info(repo, files_metadata=True)'s request
            info = self._get(f"/api/models/{repo}", {"blobs": "true"})
            files = [
                RemoteFile(
                    path=str(s["rfilename"]),
                    size=int((s.get("lfs") or {}).get("size") or s.get("size") or 0),
                    sha256=(s.get("lfs") or {}).get("sha256"),
                )
                for s in info.get("siblings") or []
            ]
            return group_files(
                str(info.get("id") or repo),
                str(info.get("sha") or "main"),
                files,
                bool(info.get("gated")),
            )
        except Exception as e:
            raise translate(e, repo) from None

    # ── One file ──────────────────────────────────────────────────────────────
    def metadata(self, repo: str, commit: str, path: str) -> FileMeta:
        """HEAD of the file's resolve URL: where its bytes are, its size and its etag."""
        self._guard()
        url = hf_hub_url(repo, path, revision=commit, endpoint=endpoint())
        try:
            meta = get_hf_file_metadata(
                url,
                token=self.token(),
                endpoint=endpoint(),
                timeout=constants.HF_HUB_ETAG_TIMEOUT,
                **AGENT,
            )
        except Exception as e:
            raise translate(e, repo, path) from None
        return FileMeta(repo, path, url, meta.location, meta.size, meta.etag, meta.commit_hash)

    def _headers(self, meta: FileMeta) -> dict[str, str]:
        """The library's headers (with the token only while the request stays on the hub)."""
        headers = build_hf_headers(token=self.token(), **AGENT)
        headers["Accept-Encoding"] = "identity"
        if urlparse(meta.location).netloc != urlparse(meta.url).netloc:
            headers.pop("authorization", None)  # a CDN: signed URL, no token
            headers.pop("Authorization", None)
        return headers

    @contextmanager
    def stream(self, meta: FileMeta, start: int = 0) -> Iterator[httpx2.Response]:
        """The file's bytes from ``start`` (a ``Range`` request); the answer is checked with
        the library's rules. 206 means from ``start``, 200 from the beginning."""
        headers = self._headers(meta)
        if start:
            headers["Range"] = f"bytes={start}-"
        timeout = httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT)
        try:
            with get_session().stream(
                "GET", meta.location, headers=headers, timeout=timeout, follow_redirects=True
            ) as response:
                hf_raise_for_status(response)
                yield response
        except HfHubHTTPError as e:  # network errors stay as they are: the caller retries
            raise translate(e, meta.repo, meta.path) from e

    def read_header(self, repo: str, commit: str, path: str) -> GgufHeader:
        """The GGUF header of a file on the hub, read with ranged requests of its beginning
        only (2 MiB first, twice as much each time the header goes on), never the tensors."""
        meta = self.metadata(repo, commit, path)
        limit = min(meta.size or HEADER_MAX, HEADER_MAX)
        data = b""
        want = min(HEADER_FIRST_READ, limit)
        while True:
            data += self._read_range(meta, len(data), want)
            try:
                return parse_header(data, f"{repo}/{path}")
            except GgufTruncatedError:
                if len(data) >= limit:
                    raise
                want = min(len(data) * 2, limit)

    def _read_range(self, meta: FileMeta, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` (exclusive) of the file; a server that ignores ``Range``
        is read only as far as needed."""
        headers = self._headers(meta)
        headers["Range"] = f"bytes={start}-{end - 1}"
        out = bytearray()
        try:
            with get_session().stream(
                "GET",
                meta.location,
                headers=headers,
                timeout=httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT),
                follow_redirects=True,
            ) as r:
                hf_raise_for_status(r)
                skip = start if r.status_code == 200 else 0  # the whole file came back
                for chunk in r.iter_bytes():
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    out += chunk
                    if len(out) >= end - start:
                        break
        except Exception as e:
            raise translate(e, meta.repo, meta.path) from None
        return bytes(out[: end - start])
