"""The SDK's first packet: who the client is, and, with ``API_KEY`` set, whether it may in.

The SDKs send ``{"authVersion": 1, "clientIdentifier", "clientPasskey"}``. An LM Studio API
token ``sk-lm-<identifier>:<passkey>`` is split by the SDK into those two fields, so with
``API_KEY`` set a client gets in when the packet spells the key (as a token, or the key as
its passkey), or when the upgrade request carries it (``Authorization: Bearer`` or
``x-api-key``). The answer is ``{"success": true}``, or ``{"success": false, "error": ...}``:
a string as LM Studio's JS SDK reads it, an error object for the Python SDK (1.5 reads only
that; later versions read both).
"""

from __future__ import annotations

import hmac
import secrets
import string
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy

from app.core.api.lmstudio_ws.errors import SdkError

MAX_FIELD = 256  # LM Studio's limit on both fields


@dataclass(frozen=True)
class Client:
    """One authenticated connection's client, as it named itself."""

    identifier: str
    user_agent: str

    def __str__(self) -> str:
        return f"{self.identifier} ({self.user_agent or 'no user agent'})"


class Refused(Exception):
    """The client may not in; ``error`` says why and what to do."""

    def __init__(self, error: SdkError) -> None:
        super().__init__(error.title)
        self.error = error


def python_sdk(user_agent: str) -> bool:
    """Whether the client is lmstudio-python (its websockets are httpx-ws's)."""
    return user_agent.lower().startswith("python-httpx")


def example_token() -> str:
    """A fresh random token of LM Studio's form, to suggest for ``API_KEY``."""
    alnum = string.ascii_letters + string.digits
    pick = lambda n: "".join(secrets.choice(alnum) for _ in range(n))  # noqa: E731
    return f"sk-lm-{pick(8)}:{pick(20)}"


def _same(given: str, key: str) -> bool:
    return hmac.compare_digest(given.encode(), key.encode())


def _header_key(headers: CIMultiDictProxy[str]) -> str:
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer ") :]
    return headers.get("x-api-key", "")


def authenticate(packet: Any, key: str, headers: CIMultiDictProxy[str]) -> Client:
    """The client of a valid packet; ``Refused`` for a bad packet or a missing key."""
    agent = headers.get("User-Agent", "")[:200]
    if (
        not isinstance(packet, dict)
        or packet.get("authVersion") != 1
        or not isinstance(packet.get("clientIdentifier"), str)
        or not isinstance(packet.get("clientPasskey"), str)
        or len(packet["clientIdentifier"]) > MAX_FIELD
        or len(packet["clientPasskey"]) > MAX_FIELD
    ):
        raise Refused(
            SdkError(
                "Not an LM Studio SDK authentication packet",
                cause='The first message must be {"authVersion": 1, "clientIdentifier": '
                '"...", "clientPasskey": "..."}.',
                suggestion="Connect with LM Studio's SDK (lmstudio-python or lmstudio-js).",
            )
        )
    ident, passkey = packet["clientIdentifier"], packet["clientPasskey"]
    client = Client(identifier=ident, user_agent=agent)
    if not key:
        return client
    if _same(f"sk-lm-{ident}:{passkey}", key) or _same(passkey, key):
        return client
    if _same(_header_key(headers), key):
        return client
    raise Refused(
        SdkError(
            "This server needs its API key (API_KEY is set in FamilyLog Tray's settings), "
            "and the client did not send it",
            cause="LM Studio's SDKs send a key as an API token of the form "
            "sk-lm-<8 letters or digits>:<20 letters or digits>.",
            suggestion="Set API_KEY to such a token (for example "
            f"{example_token()}) and give the same token to the client: lmstudio-python "
            "1.6 or later: lms.Client(api_token=...) or LMSTUDIO_API_TOKEN; lmstudio-js 2: "
            "new LMStudioClient({apiToken}) or LM_API_TOKEN (1.x: its two parts as "
            "clientIdentifier and clientPasskey). lmstudio-python 1.5 cannot send a token.",
        )
    )


def refusal(error: SdkError, client_is_python: bool) -> dict[str, Any]:
    """The failed authentication answer, in the form the client's SDK reads."""
    if client_is_python:
        return {"success": False, "error": error.wire()}
    text = " ".join(p for p in (error.title + ".", error.cause, error.suggestion) if p)
    return {"success": False, "error": text}
