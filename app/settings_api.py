"""The settings of the "API" tab, a group of ``app.config.Settings``' fields kept in their
own module (``Settings`` inherits them, so ``from app.config import Settings`` is the one way
to read them): where LM Studio's API listens, who may reach it (remote access, the key,
allowed hosts and web page origins), the limits that keep any client from stalling or
starving it, and whether the llama-server ports are open to other programs.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from app.settings_meta import API, NEXT_LOAD, NOW, RESTART
from app.settings_meta import in_tab as _in
from app.settings_types import CommaList, PortsOpen


class ApiSettings(BaseSettings):
    """The "API" fields of ``Settings``, in the tab's order."""

    API_HOST: str = Field(
        default="127.0.0.1",
        title="Address",
        description="The address the LM Studio-compatible API listens on; a non-loopback "
        "address needs 'Allow remote access'",
        json_schema_extra=_in(API, RESTART),
    )
    API_PORT: int = Field(
        default=1234,
        ge=0,
        le=65535,
        title="Port",
        description="The API's port (LM Studio's is 1234)",
        json_schema_extra=_in(API, RESTART),
    )
    API_ALLOW_REMOTE: bool = Field(
        default=False,
        title="Allow remote access",
        description="Allow listening on an address other computers can reach",
        json_schema_extra=_in(API, RESTART),
    )
    API_KEY: SecretStr = Field(
        default=SecretStr(""),
        title="API key",
        description="When set, requests need 'Authorization: Bearer <key>' or 'x-api-key'; "
        "LM Studio's SDKs send it as an API token, so use that form (sk-lm-<8>:<20> letters "
        "or digits); empty = no key",
        json_schema_extra=_in(API, RESTART),
    )
    API_ENABLED: bool = Field(
        default=True,
        title="Serve the API",
        description="Answer LM Studio's API on the address and port above",
        json_schema_extra=_in(API, RESTART),
    )
    API_ALLOWED_HOSTS: CommaList = Field(
        default="",
        title="Allowed host names",
        description="With API_ALLOW_REMOTE: the Host names the API answers to, comma-separated "
        "(loopback names always); empty = any name (a warning is logged)",
        json_schema_extra=_in(API, RESTART),
    )
    API_CORS_ORIGINS: CommaList = Field(
        default="",
        title="Allowed web origins",
        description="Web page origins allowed to call the API, comma-separated, e.g. "
        "http://localhost:3000; '*' = any page. Empty: every request with an Origin is refused",
        json_schema_extra=_in(API, RESTART),
    )
    API_MAX_BODY_MB: float = Field(
        default=64.0,
        gt=0,
        title="Largest request (MiB)",
        description="Largest request body in MiB (413 above it)",
        json_schema_extra=_in(API, RESTART),
    )
    API_BODY_TIMEOUT_SECONDS: float = Field(
        default=60.0,
        gt=0,
        title="Request body timeout (seconds)",
        description="Time a client has to send a request body (408 after)",
        json_schema_extra=_in(API, RESTART),
    )
    API_MAX_CONNECTIONS: int = Field(
        default=64,
        ge=1,
        title="Requests at once",
        description="Requests answered at once; more get 503 until one ends. A request "
        "counts once its body has arrived",
        json_schema_extra=_in(API, RESTART),
    )
    API_MAX_PENDING_PER_CLIENT: int = Field(
        default=8,
        ge=1,
        title="Unfinished requests per client",
        description="Requests one client address may have whose body is still arriving; "
        "beyond it a body must arrive within 2 s (429 after)",
        json_schema_extra=_in(API, RESTART),
    )
    API_MAX_OPEN_CONNECTIONS: int = Field(
        default=512,
        ge=16,
        title="Open connections",
        description="Connections kept open, idle ones included (also capped by the open-file "
        "limit less a reserve); at the cap the longest-idle one is closed for a new one",
        json_schema_extra=_in(API, RESTART),
    )
    API_HEADER_TIMEOUT_SECONDS: float = Field(
        default=10.0,
        gt=0,
        title="Request head timeout (seconds)",
        description="Time a client has to send a request's headers; a connection that sends "
        "nothing is closed after it",
        json_schema_extra=_in(API, RESTART),
    )
    API_BODY_STALL_SECONDS: float = Field(
        default=10.0,
        gt=0,
        title="Body stall timeout (seconds)",
        description="Longest wait for the first byte of a request body and between its bytes "
        "(408 after)",
        json_schema_extra=_in(API, RESTART),
    )
    API_KEEPALIVE_SECONDS: float = Field(
        default=60.0,
        gt=0,
        title="Keep-alive (seconds)",
        description="An idle connection between two requests is closed after this",
        json_schema_extra=_in(API, RESTART),
    )
    API_ACCEPT_COMPRESSED: bool = Field(
        default=True,
        title="Accept compressed requests",
        description="Accept request bodies sent with Content-Encoding gzip or deflate "
        "(inflated off the event loop, at most the largest request size); off: 415",
        json_schema_extra=_in(API, RESTART),
    )
    API_JSON_MAX_KEYS: int = Field(
        default=1000,
        ge=16,
        title="Most members per JSON object",
        description="Members one object of a request body may have (400 above it): "
        "llama-server reads wide objects in quadratic time",
        json_schema_extra=_in(API, RESTART),
    )
    API_JSON_MAX_ITEMS: int = Field(
        default=1_000_000,
        ge=16,
        title="Most items per JSON array",
        description="Items one array of a request body may have (400 above it)",
        json_schema_extra=_in(API, RESTART),
    )
    UPSTREAM_READ_TIMEOUT_SECONDS: float = Field(
        default=600.0,
        ge=0,
        title="Model silence limit (seconds)",
        description="How long a request may wait for the next bytes of a model's answer "
        "(the time between two reads, not the whole answer; long prompts need a while "
        "before the first token) before it gets 504 and the server is checked; 0 = no limit",
        json_schema_extra=_in(API, NOW),
    )
    LLAMA_PORTS_OPEN: PortsOpen = Field(
        default="auto",
        title="Open llama-server ports",
        description="Whether programs other than the app may call llama-server's ports: "
        "'auto' opens them only for a FamilyLog that talks to them directly "
        "(RUN_PRELOAD set, CONNECTION_TYPE=offline, FAMILYLOG_MANAGES_MODELS off)",
        json_schema_extra=_in(API, NEXT_LOAD),
    )
    API_ALLOW_IMAGE_URLS: bool = Field(
        default=False,
        title="Let llama-server fetch image URLs",
        description="Pass http(s):// and file:// image URLs on to llama-server, which then "
        "downloads them. Off: such requests get a 400 asking for the image inline (a data: "
        "URL). Risk: anyone who may call the API can make this computer fetch addresses on "
        "your network and learn which of them answer",
        json_schema_extra=_in(API, NOW),
    )
    API_CHAT_STORE_MB: float = Field(
        default=256.0,
        ge=0,
        title="Memory for stored chats (MiB)",
        description="/api/v1/chat keeps conversations (images included) in memory so a client "
        "can continue them (previous_response_id) until the app quits; past this size the "
        "least recently used are dropped. 0 = keep none",
        json_schema_extra=_in(API, NOW),
    )

    # ── Derived values ────────────────────────────────────────────────────────
    @property
    def cors_origins(self) -> list[str]:
        return [p for p in self.API_CORS_ORIGINS.split(",") if p]

    @property
    def allowed_hosts(self) -> list[str]:
        return [p for p in self.API_ALLOWED_HOSTS.split(",") if p]
