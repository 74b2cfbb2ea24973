"""The address a client on this machine reaches a server at, and whether an address is a
loopback one (no imports beyond the standard library, so the command line stays quick to
start)."""

from __future__ import annotations

import asyncio
import ipaddress


def client_url(host: str, port: int) -> str:
    """``http://host:port`` as a client on this machine reaches a server listening on
    ``host``: one listening on every address is asked over loopback."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return False
    addrs = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    return bool(addrs) and all(a.is_loopback for a in addrs)
