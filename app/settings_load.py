"""Reading the settings (``app.config.Settings``) from their sources, with readable errors.

Sources, later wins: FamilyLog's ``.env`` (in ``FAMILYLOG_DIR`` when set; only the seed's
keys, ``FAMILYLOG_ENV_KEYS``), the app's own settings file (``settings.env`` in the app
home), environment variables. A key set twice in the app's file is a warning
(``settings_warnings``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import ValidationError

from app.config import Settings
from app.paths import AppPaths

# The seed's llama.cpp keys in FamilyLog's .env (config.py's first block): read at each
# start (``FAMILYLOG_ENV_KEYS``) and copied by the set-up (``familylog_env.IMPORTED_KEYS``).
SEED_LLAMA_KEYS = (
    "LLAMA_SERVER_PATH",
    "VISION_MODEL_GGUF",
    "VISION_MMPROJ",
    "LLM_MODEL_GGUF",
    "LLAMA_GPU_LAYERS",
    "LLAMA_CTX_SIZE",
    "LLAMA_VISION_PORT",
    "LLAMA_LLM_PORT",
)
# What the app reads from FamilyLog's .env: the seed's section 3 (config.py's first block).
# FamilyLog keeps settings of its own there (tokens, its own modes) that are not the app's.
FAMILYLOG_ENV_KEYS = (*SEED_LLAMA_KEYS, "CONNECTION_TYPE", "OPENROUTER_URL")


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
        own = [f for f in files if f == paths.settings_file]
        fl_values = _familylog_values([f for f in files if f not in own], own)
        values = {**fl_values, **overrides}
        return Settings(_env_file=tuple(own) or None, **values)  # type: ignore[call-arg]
    except ValidationError as e:
        raise SettingsError(describe_validation_error(e, files)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(
            f"Cannot read the settings files {', '.join(map(str, files))}: {e}. "
            "Fix or remove the file and start again."
        ) from None


def _familylog_values(fl_files: list[Path], own: list[Path]) -> dict[str, str]:
    """The seed's keys from FamilyLog's ``.env`` that neither the app's own file nor the
    environment sets (they win over it)."""
    values: dict[str, str] = {}
    for f in fl_files:
        for k, v in dotenv_values(f).items():
            if k in FAMILYLOG_ENV_KEYS and v is not None:
                values[k] = v
    mine = {k for f in own for k in dotenv_values(f)}
    return {k: v for k, v in values.items() if k not in os.environ and k not in mine}


def settings_warnings(paths: AppPaths) -> list[str]:
    """What is odd but not wrong in the app's settings file: a key set on two lines (the
    last one wins, which is easy to miss)."""
    path = paths.settings_file
    if not path.is_file():
        return []
    seen: dict[str, list[str]] = defaultdict(list)  # key -> its lines (no value: keys)
    try:
        with open(path, encoding="utf-8") as f:
            for b in parse_stream(f):
                if b.key is not None and not b.error:
                    seen[b.key].append(str(b.original.line))
    except (OSError, UnicodeDecodeError):
        return []  # load_settings says what is wrong with it
    return [
        f"{path}: {key} is set on lines {', '.join(at[:-1])} and {at[-1]}; line {at[-1]} "
        f"wins. Remove the other{'s' if len(at) > 2 else ''}."
        for key, at in seen.items()
        if len(at) > 1
    ]


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
