"""Per-start keys for the llama-server processes the app starts, and the helpers that
every caller (the API proxy, readiness polls, the hung probe) uses to reach them.

With private ports (the default) each start of a server gets a fresh random key, so only
the app can use the server: a web page, or any other program, gets 401 from llama-server.
llama-server answers ``/health``, ``/v1/models`` and ``/models`` without its key whatever
its options, so a private server also serves under a path prefix (``--api-prefix``, as
``LLAMA_ARG_API_PREFIX``): llama-server lets through without the key only those paths
*without* the prefix, which then answer 404, and asks for the key on everything under it.
Every server the app starts allows no web page's origin and never credentials (CORS).
With open ports (``LLAMA_PORTS_OPEN``, for a FamilyLog that calls the ports directly) the
server gets the settings' ``API_KEY``, or no key at all, and no prefix, as before.
"""

from __future__ import annotations

import secrets

from app.core.servers.states import ServerStatus


def new_key() -> str:
    """A fresh key for one start of one server."""
    return secrets.token_urlsafe(32)


PRIVATE_PREFIX = "/familylog-private"
# The one origin llama-server's CORS answers name: under .invalid, which no page can have.
CORS_ORIGIN = "http://familylog-tray.invalid"


def server_url(port: int, path: str, status: ServerStatus | None = None) -> str:
    """The URL of ``path`` on the server behind ``status`` (its prefix, if private)."""
    prefix = status.prefix if status is not None else ""
    return f"http://127.0.0.1:{port}{prefix}{path}"


def auth_headers(status: ServerStatus | None) -> dict[str, str]:
    """The headers a request to the server behind ``status`` needs (empty: no key)."""
    key = status.key if status is not None else None
    return {"Authorization": f"Bearer {key}"} if key else {}
