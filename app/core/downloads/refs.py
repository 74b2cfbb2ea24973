"""What the download code says about the hub without importing ``huggingface_hub`` (it
takes seconds to import, so the app loads it only when a download or a search starts):
the names a person gives a model, the hub's address, and ``HubError``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

DEFAULT_ENDPOINT = "https://huggingface.co"


class HubError(Exception):
    """A hub request failed. ``kind``: "offline", "gated", "not_found", "denied",
    "rate_limited", "missing_file" or "hub_error"; the message says what to do."""

    def __init__(self, message: str, kind: str = "hub_error", status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class DownloadRefused(Exception):
    """A download that is not started; ``code`` for the API (``insufficient_disk``,
    ``gated``, ``not_found``, ``offline``, ``bad_request``...), the message for a person."""

    def __init__(self, message: str, code: str = "bad_request", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def refused(e: HubError) -> DownloadRefused:
    status = {"gated": 403, "not_found": 404, "missing_file": 404, "offline": 503}.get(e.kind)
    return DownloadRefused(str(e), e.kind, status or e.status or 502)


def endpoint() -> str:
    """``HF_ENDPOINT`` as set now (the library reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def repo_url(repo: str) -> str:
    return f"{endpoint()}/{repo}"


@dataclass(frozen=True)
class ModelRef:
    """What a person or a client names: a repository, perhaps a file or a quantization."""

    repo: str
    file: str | None = None
    quant: str | None = None


_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_ref(text: str, file: str | None = None, quant: str | None = None) -> ModelRef:
    """``org/name``, ``org/name:Q4_K_M`` (llama-server's ``-hf``), or a hub link
    (``https://huggingface.co/org/name``, ``…/blob/main/file.gguf``). ``ValueError`` with
    the forms it takes when it is none of them."""
    raw = text.strip()
    path = raw
    if "://" in raw or raw.startswith(("huggingface.co/", "hf.co/")):
        parsed = urlparse(raw if "://" in raw else "https://" + raw)
        path = parsed.path.strip("/")
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 5 and parts[2] in ("blob", "resolve"):
        file = file or "/".join(parts[4:])
    repo = "/".join(parts[:2])
    if ":" in repo and not quant:
        repo, _, quant = repo.partition(":")
    if not _REPO.match(repo):
        raise ValueError(
            f"{text!r} does not name a Hugging Face repository: give it as publisher/name "
            "(e.g. Qwen/Qwen3-8B-GGUF), publisher/name:QUANT, or a huggingface.co link."
        )
    return ModelRef(repo, file or None, quant or None)


@dataclass(frozen=True)
class RepoHit:
    """One search result."""

    repo: str
    downloads: int
    likes: int
    gated: bool
    last_modified: str | None


@dataclass(frozen=True)
class FileMeta:
    """Where a file's bytes are and what they are (from a HEAD of its resolve URL)."""

    repo: str
    path: str
    url: str  # the resolve URL
    location: str  # where the bytes are served (a CDN after the hub's redirect)
    size: int | None
    etag: str | None  # the sha256 for an LFS file
    commit: str | None
