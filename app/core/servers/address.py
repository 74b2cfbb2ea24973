"""The address a client on this machine reaches a server at (no imports beyond the standard
library, so the command line stays quick to start)."""

from __future__ import annotations


def client_url(host: str, port: int) -> str:
    """``http://host:port`` as a client on this machine reaches a server listening on
    ``host``: one listening on every address is asked over loopback."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
