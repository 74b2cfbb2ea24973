"""Per-start keys for the llama-server processes the app starts, and the one helper that
every caller (the API proxy, readiness polls, the hung probe) uses to send them.

With private ports (the default) each start of a server gets a fresh random key, so only
the app can use the server: a web page, or any other program, gets 401 from llama-server.
llama-server still answers ``/health`` without a key. With open ports (``LLAMA_PORTS_OPEN``,
for a FamilyLog that calls the ports directly) the server gets the settings' ``API_KEY``,
or no key at all, as before.
"""

from __future__ import annotations

import secrets

from app.core.servers.states import ServerStatus


def new_key() -> str:
    """A fresh key for one start of one server."""
    return secrets.token_urlsafe(32)


def auth_headers(status: ServerStatus | None) -> dict[str, str]:
    """The headers a request to the server behind ``status`` needs (empty: no key)."""
    key = status.key if status is not None else None
    return {"Authorization": f"Bearer {key}"} if key else {}
