"""Peer servers: other servers in the house that speak LM Studio's or OpenAI's API (another
FamilyLog Tray, LM Studio, llama-swap, a llama-server, Ollama's OpenAI endpoint), named in
``PEERS``. Their models are listed beside the app's own as ``<peer>/<model>`` and the API
forwards requests for them (``app/core/api/peers.py``), so a client keeps one address.

Each peer is checked in the background (every ``check_every`` seconds, at once when
``PEERS`` changes, and after a forward could not reach it): its model list is read from
``/api/v1/models`` (LM Studio's REST API, which also takes loads and unloads), else
``/api/v0/models``, else ``/v1/models``. A peer that does not answer is shown offline with the
reason, its models stay listed (offline) and answer 502 naming it; it comes back when it
answers again.

Loops: every request from one app to another carries the chain of app instances it has
passed through (``CHAIN_HEADER``) and every answer names the app that gave it
(``INSTANCE_HEADER``). A request that comes back to an app already in its chain is refused
(508); a peer's models that are the asking app's own, or come from an app in the chain, are
left out of the list it is given, so two apps that list each other each list the other's
own models only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.config import Settings, SettingsSource
from app.core.events import Listeners
from app.settings_types import PeerEntry, peer_entries

log = logging.getLogger(__name__)

CHECK_SECONDS = 15.0
TIMEOUT = 5.0
CHAIN_HEADER = "X-FamilyLog-Chain"  # the app instances a request has passed through
INSTANCE_HEADER = "X-FamilyLog-Instance"  # the app instance that answers
MAX_CHAIN = 8  # apps a request may pass through


class PeerState(enum.StrEnum):
    UNCHECKED = "not checked yet"
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True)
class PeerModel:
    peer: str
    id: str  # what the peer calls it
    type: str = "llm"  # "llm", "vlm", "embeddings" (LM Studio's v0 words)
    state: str = "not-loaded"  # "loaded", "not-loaded"; "available" when the peer says not
    via: str | None = None  # the app instance it comes from, when the peer forwards it too
    info: dict[str, Any] = field(default_factory=dict, compare=False)  # the peer's entry

    @property
    def key(self) -> str:
        """What this app lists it as: ``<peer>/<model>``."""
        return f"{self.peer}/{self.id}"


@dataclass(frozen=True)
class PeerStatus:
    name: str
    url: str
    state: PeerState = PeerState.UNCHECKED
    reason: str = ""  # why offline; what was left out of its list
    models: tuple[PeerModel, ...] = ()  # the last list read (kept while offline)
    lmstudio: bool = False  # it takes LM Studio's REST loads and unloads
    instance: str | None = None  # its app instance id, when it is a FamilyLog Tray
    checked_at: float = 0.0

    @property
    def online(self) -> bool:
        return self.state is PeerState.ONLINE

    def offline(self, url: str, why: str, at: float) -> PeerStatus:
        """Offline at ``url`` since ``at`` for ``why``, keeping what it last knew (its list,
        whether it takes LM Studio's loads, its instance id)."""
        return PeerStatus(
            self.name, url, PeerState.OFFLINE, why, self.models, self.lmstudio, self.instance, at
        )

    def text(self) -> str:
        """One line for the tray and the models window."""
        n = len(self.models)
        models = f"{n} model{'s' if n != 1 else ''}"
        if self.online:
            extra = f"; {self.reason}" if self.reason else ""
            return f"{self.name} ({self.url}): online, {models}{extra}"
        if self.state is PeerState.UNCHECKED:
            return f"{self.name} ({self.url}): {self.state}"
        return f"{self.name} ({self.url}): offline ({self.reason})" + (
            f", {models} last seen" if n else ""
        )


class PeerError(Exception):
    """A peer could not be used; the message names it and says why (answered 502/508)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def chain_of(header: str | None) -> list[str]:
    """The app instances in a ``CHAIN_HEADER`` value."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


class Peers:
    """The peers of ``PEERS``, checked in the background; a core service."""

    def __init__(
        self,
        settings: SettingsSource,
        *,
        subscribe: Callable[[Callable], Callable[[], None]] | None = None,
        check_every: float = CHECK_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._subscribe = subscribe
        self.check_every = check_every
        self.instance = uuid.uuid4().hex[:12]  # this app, in chains and answers
        self.statuses: dict[str, PeerStatus] = {}
        self._listeners: Listeners[[]] = Listeners("peers")
        self._transport = transport
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None

    # ── Reading ────────────────────────────────────────────────────────────────
    def configured(self) -> list[PeerEntry]:
        return peer_entries(self._settings().PEERS)

    def shown(self) -> list[PeerStatus]:
        """Every configured peer with what is known of it."""
        return [self.statuses.get(p.name) or PeerStatus(p.name, p.url) for p in self.configured()]

    def models(self, chain: Iterable[str] = ()) -> list[PeerModel]:
        """Every peer's models as last read (an offline peer's too), less those of a peer
        that is an app of ``chain`` (the asking app and those before it)."""
        skip = set(chain)
        return [
            m
            for st in self.shown()
            if st.instance is None or st.instance not in skip
            for m in st.models
            if m.via is None or m.via not in skip
        ]

    def find(self, name: object) -> tuple[PeerEntry, PeerStatus, str] | None:
        """The peer and its model id for ``<peer>/<model>``; None when ``name`` names no
        configured peer."""
        if not isinstance(name, str) or "/" not in name:
            return None
        peer, _, model = name.partition("/")
        for entry in self.configured():
            if entry.name == peer and model:
                return entry, self.statuses.get(peer) or PeerStatus(entry.name, entry.url), model
        return None

    def subscribe(self, cb: Callable[[], object]) -> Callable[[], None]:
        """``cb()`` whenever a peer's status or models change."""
        return self._listeners.add(cb)

    def headers(self, entry: PeerEntry, chain: list[str]) -> dict[str, str]:
        """What a request to ``entry`` carries: its key, and the chain with this app added."""
        out = {CHAIN_HEADER: ",".join([*chain, self.instance])}
        if entry.key:
            out["Authorization"] = f"Bearer {entry.key}"
        return out

    def check_chain(self, chain: list[str], what: str) -> None:
        """Refuse (``PeerError`` 508) a request that came back to this app."""
        if self.instance in chain:
            raise PeerError(
                508,
                f"Refused: {what} has passed through this app already (a loop between "
                f"apps that list each other as peers; chain {', '.join(chain)}). Use the "
                "model's own name on the app that has it.",
                "peer_loop",
            )
        if len(chain) >= MAX_CHAIN:
            raise PeerError(
                508,
                f"Refused: {what} has passed through {len(chain)} apps already",
                "peer_loop",
            )

    # ── Checking ───────────────────────────────────────────────────────────────
    def client(self, timeout: float = TIMEOUT) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=timeout, trust_env=False, transport=self._transport, follow_redirects=False
        )

    async def check(self, names: Iterable[str] | None = None) -> list[PeerStatus]:
        """Read the model list of each peer (``names``; default all) now."""
        wanted = [p for p in self.configured() if names is None or p.name in set(names)]
        async with self.client() as client:
            found = await asyncio.gather(*(self._check_one(client, p) for p in wanted))
        for st in found:
            self._set(st)
        return found

    async def _check_one(self, client: httpx.AsyncClient, entry: PeerEntry) -> PeerStatus:
        old = self.statuses.get(entry.name) or PeerStatus(entry.name, entry.url)
        now = time.monotonic()
        headers = self.headers(entry, [])
        reason = ""
        for path in ("/api/v1/models", "/api/v0/models", "/v1/models"):
            try:
                r = await client.get(entry.url + path, headers=headers)
            except httpx.HTTPError as e:
                return old.offline(entry.url, _transport_words(e), now)
            if r.status_code in (401, 403):
                why = f"it refused the key ({r.status_code}): set its key in PEERS"
                return PeerStatus(
                    entry.name, entry.url, PeerState.OFFLINE, why, old.models, checked_at=now
                )
            if r.status_code == 508:
                reason = "it refuses this app's requests as a loop"
                break
            if r.status_code != 200:
                continue
            instance = r.headers.get(INSTANCE_HEADER)
            if instance == self.instance:
                why = "that address is this app itself"
                return PeerStatus(entry.name, entry.url, PeerState.OFFLINE, why, checked_at=now)
            try:
                models, left_out = _read_models(entry.name, path, r.json(), self.instance)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not the list this path should give: try the next
            if left_out:
                reason = f"{left_out} of its models are this app's own, left out (no loop)"
            return PeerStatus(
                entry.name,
                entry.url,
                PeerState.ONLINE,
                reason,
                tuple(models),
                path == "/api/v1/models",
                instance,
                now,
            )
        why = reason or "it answers none of /api/v1/models, /api/v0/models, /v1/models"
        return PeerStatus(entry.name, entry.url, PeerState.OFFLINE, why, old.models, checked_at=now)

    def _set(self, st: PeerStatus) -> None:
        old = self.statuses.get(st.name)
        self.statuses[st.name] = st
        if old is None or (old.state, old.reason, old.models) != (st.state, st.reason, st.models):
            if st.state is PeerState.OFFLINE:
                log.warning("Peer %s", st.text())
            else:
                log.info("Peer %s", st.text())
            self._listeners.emit()

    def went_offline(self, entry: PeerEntry, why: str) -> None:
        """A forward could not reach ``entry``: show it offline now, and check it again."""
        old = self.statuses.get(entry.name) or PeerStatus(entry.name, entry.url)
        self._set(old.offline(entry.url, why, time.monotonic()))
        self._wake.set()

    def changed(self) -> None:
        """A load or unload went through a peer: read its list again soon."""
        self._wake.set()

    # ── Service ────────────────────────────────────────────────────────────────
    async def start(self) -> None:
        if self._subscribe is not None:
            self._unsubscribe = self._subscribe(self._on_settings)
        self._task = asyncio.create_task(self._loop(), name="peers")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_settings(self, old: Settings, new: Settings) -> None:
        if old.PEERS != new.PEERS:
            names = {p.name for p in peer_entries(new.PEERS)}
            self.statuses = {n: st for n, st in self.statuses.items() if n in names}
            self._listeners.emit()
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            if self.configured():
                try:
                    await self.check()
                except Exception:
                    log.exception("Checking the peers failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_every)


def _transport_words(e: httpx.HTTPError) -> str:
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect: {e}" if str(e) else "cannot connect"
    if isinstance(e, httpx.TimeoutException):
        return "no answer in time"
    return str(e) or type(e).__name__


_V1_TYPES = {"llm": "llm", "embedding": "embeddings"}


def _read_models(
    peer: str, path: str, data: dict[str, Any], me: str
) -> tuple[list[PeerModel], int]:
    """The models of a peer's list (and how many were this app's own, left out)."""
    out: list[PeerModel] = []
    left_out = 0
    if path == "/api/v1/models":
        items = data["models"]
        for m in items:
            via = (m.get("peer") or {}).get("instance")
            if via == me:
                left_out += 1
                continue
            kind = "vlm" if (m.get("capabilities") or {}).get("vision") else m.get("type", "llm")
            state = "loaded" if m.get("loaded_instances") else "not-loaded"
            out.append(PeerModel(peer, str(m["key"]), _V1_TYPES.get(kind, kind), state, via, m))
        return out, left_out
    for m in data["data"]:
        via = (m.get("peer") or {}).get("instance") if isinstance(m.get("peer"), dict) else None
        if via == me:
            left_out += 1
            continue
        if path == "/api/v0/models":
            out.append(
                PeerModel(peer, str(m["id"]), m.get("type", "llm"), m.get("state", ""), via, m)
            )
        else:
            status = m.get("status")  # llama-server's router mode says whether it is loaded
            state = status.get("value", "available") if isinstance(status, dict) else "available"
            out.append(PeerModel(peer, str(m["id"]), "llm", state, via, m))
    return out, left_out
