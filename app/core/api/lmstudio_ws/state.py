"""What the SDK protocol keeps: per app, the open connections and the instance names clients
chose; per connection, the session a handler is given."""

from __future__ import annotations

from collections.abc import Awaitable, Sized
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from app.core.api.common import ApiContext
from app.core.api.lmstudio_ws.auth import Client


class Open(Protocol):
    """An open connection, as the shared state sees it."""

    tasks: Sized  # its calls and channels being answered

    def shut(self) -> Awaitable[None]: ...


@dataclass
class SdkState:
    """Shared by every connection of one API server."""

    connections: set[Open] = field(default_factory=set)
    # An instance identifier a client chose at load (``load_new_instance(key, "name")``),
    # by catalogue key; it names the instance until it is unloaded or loaded again.
    names: dict[str, str] = field(default_factory=dict)

    def name_of(self, key: str) -> str:
        return self.names.get(key, key)

    def key_named(self, name: str) -> str | None:
        for key, given in self.names.items():
            if given == name:
                return key
        return None

    def running(self) -> int:
        """Calls and channels being answered now, over every connection."""
        return sum(len(conn.tasks) for conn in self.connections)


SDK = web.AppKey("familylog_sdk", SdkState)


@dataclass(frozen=True)
class Session:
    """What a handler gets: the API's shared context, the SDK state, who asks, and where."""

    c: ApiContext
    state: SdkState
    client: Client
    namespace: str
