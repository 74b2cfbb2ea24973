"""The app's settings: one pydantic-settings model, the single source of every setting.

Sources, later wins: FamilyLog's ``.env`` (in ``FAMILYLOG_DIR`` when set), the app's own
settings file (``settings.env`` in the app home), environment variables.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.paths import AppPaths

SEED_LLAMA_SERVER_PATH = "/usr/local/bin/llama-server"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore",
        case_sensitive=True,
        env_file_encoding="utf-8",
        validate_default=True,
    )

    # ── The seed's section 3 (same names and defaults) ──────────────────────────
    LLAMA_SERVER_PATH: str = SEED_LLAMA_SERVER_PATH
    VISION_MODEL_GGUF: str = ""
    VISION_MMPROJ: str = ""
    LLM_MODEL_GGUF: str = ""
    LLAMA_GPU_LAYERS: int = Field(default=-1, ge=-1)
    LLAMA_CTX_SIZE: int = Field(default=8192, ge=0)
    LLAMA_VISION_PORT: int = Field(default=8081, ge=1, le=65535)
    LLAMA_LLM_PORT: int = Field(default=8082, ge=1, le=65535)
    CONNECTION_TYPE: str = "offline"
    OPENROUTER_URL: str = "https://openrouter.ai/api/v1"

    # ── The app's own: servers ────────────────────────────────────────────────
    LLAMA_PORT: int = Field(default=8080, ge=1, le=65535)
    LLAMA_EXTRA_ARGS: str = ""
    LLAMA_READY_TIMEOUT: float = Field(default=120.0, gt=0)
    LLM_MODEL_ID: str = ""
    VISION_MODEL_ID: str = ""
    VISION_LOAD_AT_START: bool = False
    LLM_LOAD_AT_START: bool = False
    RESTART_ON_CRASH: bool = True
    HUNG_PROBE_SECONDS: float = Field(default=60.0, ge=0)

    # ── LM Studio-compatible API ─────────────────────────────────────────────
    API_HOST: str = "127.0.0.1"
    API_PORT: int = Field(default=1234, ge=0, le=65535)
    API_ALLOW_REMOTE: bool = False
    API_KEY: SecretStr = SecretStr("")
    API_ENABLED: bool = True
    JIT_LOAD: bool = True
    RUN_MODE: Literal["switch", "parallel", "auto"] = "auto"
    IDLE_UNLOAD_MINUTES: float = Field(default=0.0, ge=0)
    # At most this many models loaded at once (0: no cap); the least recently used idle
    # one is unloaded to make room.
    MAX_LOADED_MODELS: int = Field(default=0, ge=0)
    # How long a load waits for a model it must unload to finish its requests (or for a
    # run to let go of it) before it answers "busy".
    EVICT_WAIT_SECONDS: float = Field(default=60.0, ge=0)
    MODEL_DIRS: str = Field(
        default="",
        description=(
            "Folders whose GGUF models the API lists, separated like PATH (';' on Windows, "
            "':' elsewhere); empty: LM Studio's model folders, llama.cpp's and the Hugging "
            "Face cache (the folders first-run discovery scans)."
        ),
    )
    API_ALLOWED_HOSTS: str = Field(
        default="",
        description="With API_ALLOW_REMOTE: the Host names the API answers to, comma-separated "
        "(loopback names always); empty = any name (a warning is logged)",
    )
    API_CORS_ORIGINS: str = Field(
        default="",
        description="Web page origins allowed to call the API, comma-separated, e.g. "
        "http://localhost:3000; '*' = any page. Empty: every request with an Origin is refused",
    )
    API_MAX_BODY_MB: float = Field(
        default=64.0, gt=0, description="Largest request body in MiB (413 above it)"
    )
    API_BODY_TIMEOUT_SECONDS: float = Field(
        default=60.0, gt=0, description="Time a client has to send a request body (408 after)"
    )
    API_MAX_CONNECTIONS: int = Field(
        default=64, ge=1, description="Requests answered at once; more get 503 until one ends"
    )
    LLAMA_PORTS_OPEN: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="Whether programs other than the app may call llama-server's ports: "
        "'auto' opens them only for a FamilyLog that talks to them directly "
        "(RUN_PRELOAD set, CONNECTION_TYPE=offline, FAMILYLOG_MANAGES_MODELS off)",
    )

    # ── Logs ──────────────────────────────────────────────────────────────────
    LOG_VIEW_MAX_LINES: int = Field(default=20_000, ge=100)
    LOG_MAX_BYTES: int = Field(default=10 * 1024 * 1024, ge=4096)
    LOG_BACKUPS: int = Field(default=3, ge=0)

    # ── FamilyLog runs ────────────────────────────────────────────────────────
    FAMILYLOG_DIR: str = ""
    FAMILYLOG_COMMAND: str = "uv run python run.py"
    RUN_TIMEOUT_MINUTES: float = Field(default=120.0, gt=0)
    RUN_SCHEDULE: str = ""
    RUN_CATCH_UP_HOURS: float = Field(default=12.0, ge=0)
    RUN_PRELOAD: Literal["none", "vision", "llm", "both"] = "none"
    AFTER_RUN: Literal["keep", "unload", "restore"] = "keep"
    FAMILYLOG_MANAGES_MODELS: bool = False

    @field_validator("LLAMA_EXTRA_ARGS", "FAMILYLOG_COMMAND")
    @classmethod
    def _shell_words(cls, v: str) -> str:
        try:
            shlex.split(v)
        except ValueError as e:
            raise ValueError(f"cannot be split into arguments ({e}); check the quotes") from e
        return v

    @field_validator("LLAMA_PORTS_OPEN", mode="before")
    @classmethod
    def _ports_open(cls, v: object) -> object:
        words = {
            "1": "true",
            "yes": "true",
            "on": "true",
            "0": "false",
            "no": "false",
            "off": "false",
        }
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            v = v.strip().lower()
            return words.get(v, v)
        return v

    @field_validator("API_CORS_ORIGINS", "API_ALLOWED_HOSTS")
    @classmethod
    def _no_empty_items(cls, v: str) -> str:
        return ",".join(p.strip() for p in v.split(",") if p.strip())

    @field_validator("RUN_SCHEDULE")
    @classmethod
    def _schedule(cls, v: str) -> str:
        for part in filter(None, (p.strip() for p in v.split(","))):
            hh, sep, mm = part.partition(":")
            ok = sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60
            if not ok:
                raise ValueError(f"'{part}' is not a time of day; use HH:MM, e.g. 03:00,14:30")
        return v

    # ── Derived values ────────────────────────────────────────────────────────
    @property
    def llm_base_url(self) -> str:
        if self.CONNECTION_TYPE == "offline":
            return f"http://127.0.0.1:{self.LLAMA_LLM_PORT}/v1"
        return self.OPENROUTER_URL

    @property
    def vision_base_url(self) -> str:
        if self.CONNECTION_TYPE == "offline":
            return f"http://127.0.0.1:{self.LLAMA_VISION_PORT}/v1"
        return self.OPENROUTER_URL

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
        out = []
        for part in filter(None, (p.strip() for p in self.RUN_SCHEDULE.split(","))):
            hh, _, mm = part.partition(":")
            out.append((int(hh), int(mm)))
        return sorted(set(out))


class SettingsError(ValueError):
    """One readable message naming the setting, the value, what is expected and where it was set."""


def settings_sources(paths: AppPaths, environ: dict[str, str] | None = None) -> list[Path]:
    """The dotenv files that feed the settings, lowest priority first."""
    env = os.environ if environ is None else environ
    files: list[Path] = []
    own = paths.settings_file
    fl_dir = env.get("FAMILYLOG_DIR")
    if not fl_dir and own.is_file():
        fl_dir = dotenv_values(own).get("FAMILYLOG_DIR") or None
    if fl_dir:
        fl_env = Path(fl_dir).expanduser() / ".env"
        if fl_env.is_file():
            files.append(fl_env)
    if own.is_file():
        files.append(own)
    return files


def load_settings(paths: AppPaths | None = None, **overrides: object) -> Settings:
    """Read the settings from every source; raise ``SettingsError`` with a readable message."""
    paths = paths or AppPaths.resolve()
    files: list[Path] = [paths.settings_file]
    try:
        if paths.settings_file.is_file():
            check_dotenv_syntax(paths.settings_file)
        files = settings_sources(paths)
        for f in files:
            check_dotenv_syntax(f)
        return Settings(_env_file=tuple(files) or None, **overrides)  # type: ignore[call-arg]
    except ValidationError as e:
        raise SettingsError(describe_validation_error(e, files)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(
            f"Cannot read the settings files {', '.join(map(str, files))}: {e}. "
            "Fix or remove the file and start again."
        ) from None


def check_dotenv_syntax(path: Path) -> None:
    """Refuse a settings file with lines python-dotenv would silently skip."""
    with open(path, encoding="utf-8") as f:
        for binding in parse_stream(f):
            if binding.error:
                line = binding.original.string.strip()
                raise SettingsError(
                    f"{path} line {binding.original.line}: cannot read {line!r}. Each line "
                    "must be NAME=value (quotes closed); fix or remove the line and start again."
                )


def describe_validation_error(e: ValidationError, files: list[Path]) -> str:
    lines = []
    for err in e.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        where = _where_set(name, files)
        value = err.get("input")
        lines.append(
            f"Setting {name}={value!r} is invalid: {err['msg'].rstrip('.')}. "
            f"It was set {where}; correct it there."
        )
    return "\n".join(lines)


def _where_set(name: str, files: list[Path]) -> str:
    if name in os.environ:
        return "in the environment"
    for f in reversed(files):
        try:
            if name in dotenv_values(f):
                return f"in {f}"
        except OSError:
            continue
    return "by a default or a caller"
