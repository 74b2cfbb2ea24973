"""One SDK websocket after the upgrade: the authentication packet, then rpc calls and channels
answered by the namespace's handlers, each in its own task (a long prediction never holds up
a listing), and everything the connection started cancelled when it closes.

Every call gets an answer: a result, or an error in the SDK's shape (an endpoint the app does
not serve included), never silence. Failed calls leave a line in the app log (rate-limited).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from app.core.api.common import ApiContext, ApiError, parse_json_object, shown
from app.core.api.lmstudio_ws.auth import Client, Refused, authenticate, python_sdk, refusal
from app.core.api.lmstudio_ws.channels import Channel
from app.core.api.lmstudio_ws.errors import SdkError, not_served
from app.core.api.lmstudio_ws.state import SdkState, Session
from app.core.api.refusals import REFUSALS

log = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0  # seconds a client has for its first packet (as LM Studio)
MAX_WORK = 64  # calls and channels one connection may have running at once
CLOSE_WAIT = 5.0  # seconds to let cancelled work end when a connection closes

Rpc = Callable[[Session, Any], Awaitable[Any]]
ChannelHandler = Callable[[Session, Channel, Any], Awaitable[None]]


@dataclass(frozen=True)
class Namespace:
    name: str
    rpc: Mapping[str, Rpc]
    channels: Mapping[str, ChannelHandler]

    @property
    def served(self) -> bool:
        return bool(self.rpc or self.channels)


class Connection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        namespace: Namespace,
        state: SdkState,
        c: ApiContext,
    ) -> None:
        self.ws = ws
        self.request = request
        self.ns = namespace
        self.state = state
        self.c = c
        self.client: Client | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.channels: dict[int, Channel] = {}
        self._lock = asyncio.Lock()

    # ── Sending ────────────────────────────────────────────────────────────────
    async def send(self, message: dict[str, Any]) -> None:
        """Send one message; a connection already gone swallows it (its work is being
        cancelled)."""
        if self.ws.closed:
            return
        data = json.dumps(message, ensure_ascii=False)
        async with self._lock:
            try:
                await self.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                pass

    def _note(self, reason: str, why: str) -> None:
        """Log a refused or failed call in the refusal log (once per client address and
        ``reason`` a minute, as every refusal of the API)."""
        who = str(self.client) if self.client else self.request.headers.get("User-Agent", "?")
        self.request.app[REFUSALS].refused(
            self.request.remote,
            f"LM Studio SDK {self.ns.name}: {reason}",
            f"{why} (client {who})",
        )

    # ── Life ───────────────────────────────────────────────────────────────────
    async def serve(self) -> None:
        self.client = await self._authenticate()
        if self.client is None:
            return
        if not self.ns.served:
            self._note(
                "namespace not served",
                f"opened the '{self.ns.name}' namespace, which the app does not serve",
            )
        session = Session(self.c, self.state, self.client, self.ns.name)
        try:
            async for msg in self.ws:
                if msg.type is WSMsgType.TEXT:
                    self._dispatch(session, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    self._warn("binary frames are not part of the protocol")
        finally:
            await self._close()

    async def _authenticate(self) -> Client | None:
        headers = self.request.headers
        python = python_sdk(headers.get("User-Agent", ""))
        try:
            msg = await self.ws.receive(timeout=AUTH_TIMEOUT)
        except TimeoutError:
            packet: Any = None
            error = SdkError(f"No authentication packet within {AUTH_TIMEOUT:g} s")
        else:
            if msg.type is not WSMsgType.TEXT:
                return None  # closed before a word
            try:
                packet = json.loads(msg.data)
            except ValueError:
                packet = None
            key = self.c.settings().API_KEY.get_secret_value()
            try:
                client = authenticate(packet, key, headers)
            except Refused as r:
                error = r.error
            else:
                await self.send({"success": True})
                return client
        self._note("authentication refused", error.title)
        await self.send(refusal(error, python))
        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION)
        return None

    async def _close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=CLOSE_WAIT)
        self.channels.clear()

    async def shut(self) -> None:
        """The app stops: close the socket (the SDK sees the server go)."""
        await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"FamilyLog Tray is stopping")

    # ── Receiving ──────────────────────────────────────────────────────────────
    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _warn(self, warning: str) -> None:
        log.debug("SDK %s protocol warning: %s", self.ns.name, warning)
        self._spawn(self.send({"type": "communicationWarning", "warning": warning}))

    def _dispatch(self, s: Session, raw: str) -> None:
        try:  # checked as the REST bodies are: no NaN, no deep nesting, no lone surrogate
            m = parse_json_object(raw.encode())
        except ApiError as e:
            self._unusable(raw, e.message)
            return
        kind = m.get("type")
        if kind == "rpcCall" and isinstance(m.get("callId"), int):
            self._spawn(self._rpc(s, m["callId"], str(m.get("endpoint")), m.get("parameter")))
        elif kind == "channelCreate" and isinstance(m.get("channelId"), int):
            self._open(s, m["channelId"], str(m.get("endpoint")), m.get("creationParameter"))
        elif kind == "channelSend":
            ch = self.channels.get(m.get("channelId"))  # type: ignore[arg-type]
            if ch is not None and not ch.received(m.get("message")):
                self._warn(f"an unknown message on channel {ch.id} ({ch.endpoint})")
        elif kind in ("signalSubscribe", "writableSignalSubscribe"):
            self._spawn(self._no_signal(kind, m.get("subscribeId"), str(m.get("endpoint"))))
        elif kind == "keepAlive":
            self._spawn(self.send({"type": "keepAliveAck"}))
        elif kind in ("channelAck", "signalUnsubscribe", "writableSignalUnsubscribe"):
            pass
        elif kind == "communicationWarning":
            log.info("SDK client %s warns: %s", self.client, str(m.get("warning"))[:300])
        else:
            self._warn(f"a message the server does not know: type {shown(kind)}")

    def _unusable(self, raw: str, why: str) -> None:
        """A message that cannot be used: the call or channel it opens (if that can be read
        from it) gets the error, so the client does not wait; anything else a warning."""
        try:
            m = json.loads(raw)
        except (ValueError, RecursionError):
            m = None
        kind = m.get("type") if isinstance(m, dict) else None
        error = SdkError(f"The message is not usable: {why}")
        if kind == "rpcCall" and isinstance(m.get("callId"), int):
            answer = {"type": "rpcError", "callId": m["callId"], "error": error.wire()}
        elif kind == "channelCreate" and isinstance(m.get("channelId"), int):
            answer = {"type": "channelError", "channelId": m["channelId"], "error": error.wire()}
        else:
            self._warn(f"a message that is not usable JSON ({why})")
            return
        self._note(f"{kind} refused", why)
        self._spawn(self.send(answer))

    def _busy(self) -> SdkError | None:
        if len(self.tasks) < MAX_WORK:
            return None
        return SdkError(
            f"Too many calls at once on this connection (more than {MAX_WORK})",
            suggestion="Wait for some to finish.",
        )

    def _error(self, e: Exception, what: str) -> dict[str, Any]:
        if isinstance(e, ApiError):
            e = SdkError.from_api(e)
        if not isinstance(e, SdkError):
            log.exception("LM Studio SDK %s %s failed", self.ns.name, what)
            e = SdkError(
                f"Internal error in FamilyLog Tray: {e}",
                suggestion="Read the app log (Show logs… in the tray) and report it.",
            )
        self._note(f"{what} failed", e.title)
        return e.wire()

    async def _rpc(self, s: Session, call_id: int, endpoint: str, param: Any) -> None:
        handler = self.ns.rpc.get(endpoint)
        try:
            busy = self._busy()
            if busy is not None:
                raise busy
            if handler is None:
                raise not_served(self.ns.name, "rpc", endpoint)
            result = await handler(s, param)
        except Exception as e:
            error = self._error(e, f"rpc '{endpoint}'")
            await self.send({"type": "rpcError", "callId": call_id, "error": error})
            return
        answer: dict[str, Any] = {"type": "rpcResult", "callId": call_id}
        if result is not None:
            answer["result"] = result
        await self.send(answer)

    def _open(self, s: Session, channel_id: int, endpoint: str, param: Any) -> None:
        if channel_id in self.channels:
            self._warn(f"channel {channel_id} is already open")
            return
        ch = Channel(channel_id, endpoint, self.send)
        self.channels[channel_id] = ch
        self._spawn(self._channel(s, ch, param))

    async def _channel(self, s: Session, ch: Channel, param: Any) -> None:
        handler = self.ns.channels.get(ch.endpoint)
        try:
            busy = self._busy()
            if busy is not None:
                raise busy
            if handler is None:
                raise not_served(self.ns.name, "channel", ch.endpoint)
            await handler(s, ch, param)
        except Exception as e:
            error = self._error(e, f"channel '{ch.endpoint}'")
            await self.send({"type": "channelError", "channelId": ch.id, "error": error})
            return
        finally:
            self.channels.pop(ch.id, None)
        await self.send({"type": "channelClose", "channelId": ch.id})

    async def _no_signal(self, kind: str, subscribe_id: Any, endpoint: str) -> None:
        error = self._error(not_served(self.ns.name, "signal", endpoint), f"signal '{endpoint}'")
        answer = "signalError" if kind == "signalSubscribe" else "writableSignalError"
        await self.send({"type": answer, "subscribeId": subscribe_id, "error": error})
