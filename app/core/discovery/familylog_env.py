"""Import the llama.cpp settings from an existing FamilyLog ``.env``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from app.config import Settings
from app.settings_load import SEED_LLAMA_KEYS

# What the set-up copies: the seed's llama.cpp section and the ports/ids FamilyLog uses.
IMPORTED_KEYS = (*SEED_LLAMA_KEYS, "VISION_MODEL_ID", "LLM_MODEL_ID", "CONNECTION_TYPE")


class EnvImportError(ValueError):
    pass


@dataclass
class FamilyLogEnv:
    env_file: Path
    values: dict[str, str] = field(default_factory=dict)  # the IMPORTED_KEYS it sets

    @property
    def familylog_dir(self) -> Path:
        return self.env_file.parent

    def missing_files(self) -> list[str]:
        """Model or binary paths the file names that do not exist here."""
        out = []
        for key in ("LLAMA_SERVER_PATH", "VISION_MODEL_GGUF", "VISION_MMPROJ", "LLM_MODEL_GGUF"):
            value = self.values.get(key)
            if value and not Path(value).expanduser().is_file():
                out.append(f"{key}={value}")
        return out


def read_familylog_env(path: Path | str) -> FamilyLogEnv:
    """Read ``path`` (a FamilyLog ``.env``, or the folder holding one)."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / ".env"
    if not path.is_file():
        raise EnvImportError(f"No FamilyLog settings file at {path}; pick FamilyLog's .env.")
    try:
        raw = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as e:
        raise EnvImportError(f"Cannot read {path}: {e}") from e
    known = set(Settings.model_fields)
    values = {
        k: v.strip()
        for k in IMPORTED_KEYS
        if k in known and (v := raw.get(k)) is not None and v.strip() != ""
    }
    return FamilyLogEnv(env_file=path.resolve(), values=values)
