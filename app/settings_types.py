"""The forms a setting's text may need beyond its type (shell words, daily times, a comma
list, an on/off word, ``host:port`` workers, peers), checked and tidied as pydantic reads
the value; ``app.config`` uses them as the types of its fields, and the code that reads
such a value uses the same function (``daily_times``, ``worker_addresses``,
``peer_entries``)."""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator

_ON_OFF = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}


def _shell_words(v: str) -> str:
    try:
        shlex.split(v)
    except ValueError as e:
        raise ValueError(f"cannot be split into arguments ({e}); check the quotes") from e
    return v


def _comma_list(v: str) -> str:
    return ",".join(p.strip() for p in v.split(",") if p.strip())


def daily_times(v: str) -> list[tuple[int, int]]:
    """The times of day in ``v`` (HH:MM, comma-separated) as (hour, minute), sorted, each
    once; a ValueError names a part that is not one."""
    out = set()
    for part in filter(None, (p.strip() for p in v.split(","))):
        hh, sep, mm = part.partition(":")
        ok = sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60
        if not ok:
            raise ValueError(f"'{part}' is not a time of day; use HH:MM, e.g. 03:00,14:30")
        out.add((int(hh), int(mm)))
    return sorted(out)


def _daily_times(v: str) -> str:
    daily_times(v)
    return v


def _ports_open(v: object) -> object:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        v = v.strip().lower()
        return _ON_OFF.get(v, v)
    return v


# A command line, split like a shell (no shell runs it).
ShellWords = Annotated[str, AfterValidator(_shell_words)]
# Items separated by commas; blanks around them and empty items are dropped.
CommaList = Annotated[str, AfterValidator(_comma_list)]
# Times of day, HH:MM, comma-separated.
DailyTimes = Annotated[str, AfterValidator(_daily_times)]
# auto, or an on/off word (true/false, yes/no, on/off, 1/0).
PortsOpen = Annotated[Literal["auto", "true", "false"], BeforeValidator(_ports_open)]


# ── Other machines: llama.cpp RPC workers and peer servers ───────────────────
_PEER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def host_port(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for an IPv6 address) as (host, port); a ValueError says
    what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{text.strip()}' is not host:port, e.g. 192.168.1.20:50052")
    if ":" in host and not text.strip().startswith("["):
        raise ValueError(f"'{text.strip()}': write an IPv6 address in brackets, [{host}]:{port}")
    return host, int(port)


def worker_addresses(v: str) -> list[str]:
    """The RPC workers of ``v`` (comma-separated ``host:port``), each once, as llama-server's
    ``--rpc`` takes them."""
    out: list[str] = []
    for part in filter(None, (p.strip() for p in v.split(","))):
        host, port = host_port(part)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if address not in out:
            out.append(address)
    return out


class PeerEntry(NamedTuple):
    name: str  # what its models are listed under: <name>/<model>
    url: str  # its base URL, e.g. http://laptop.lan:1234 (no /v1)
    key: str = ""  # sent as "Authorization: Bearer <key>"; "" none


def peer_entries(v: str) -> list[PeerEntry]:
    """The peers of ``v``: entries separated by newlines or commas, each ``name URL [key]``
    (``name=URL`` also); a ValueError names the entry that is not one."""
    out: list[PeerEntry] = []
    for part in filter(None, (p.strip() for p in re.split(r"[,\n]", v))):
        words = part.replace("=", " ", 1).split()
        if len(words) not in (2, 3):
            raise ValueError(f"'{part}' is not 'name URL [key]', e.g. laptop http://laptop:1234")
        name, url = words[0], words[1].rstrip("/").removesuffix("/v1")
        if not _PEER_NAME.fullmatch(name):
            raise ValueError(f"peer name '{name}': letters, digits, '.', '_' or '-' only")
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"'{words[1]}' is not an http:// or https:// address")
        if any(p.name == name for p in out):
            raise ValueError(f"two peers are named '{name}'")
        out.append(PeerEntry(name, url, words[2] if len(words) == 3 else ""))
    return out


def _rpc_workers(v: str) -> str:
    return ",".join(worker_addresses(v))


def _peers(v: str) -> str:
    peer_entries(v)
    return v.strip()


# llama.cpp RPC workers, comma-separated host:port.
RpcWorkers = Annotated[str, AfterValidator(_rpc_workers)]
# Peer servers: "name URL [key]", separated by newlines or commas.
Peers = Annotated[str, AfterValidator(_peers)]
