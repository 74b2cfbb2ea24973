"""Files that may hold a secret (the API key) are readable by their owner only.

The settings writers call ``write_settings_file`` (or ``settings_file_mode`` for their
own writer); ``AppCore.start`` tightens an existing settings file that holds a key but is
readable by others.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from pathlib import Path

from dotenv import dotenv_values

from app.atomic import write_atomic

log = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")


def holds_secret(content: str) -> bool:
    """True when a dotenv text sets ``API_KEY`` (or any ``*_KEY``/``*_TOKEN``…) to a value."""
    try:
        values = dotenv_values(stream=io.StringIO(content))
    except Exception:  # unparseable: assume the worst
        return True
    return any(v and k.upper().endswith(_SECRET_SUFFIXES) for k, v in values.items())


def settings_file_mode(content: str) -> int:
    """The permission bits for a settings file with this content."""
    return PRIVATE_MODE if holds_secret(content) else PUBLIC_MODE


def write_settings_file(path: Path, content: str) -> None:
    """Write atomically, owner-only when the content holds a key (never briefly wider)."""
    write_atomic(path, content, mode=settings_file_mode(content))


def secure_existing(path: Path) -> bool:
    """Make an existing settings file that holds a key owner-only; True if it was changed."""
    if os.name == "nt":  # the profile folder's ACL already keeps other users out
        return False
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return False
    except OSError as e:
        log.warning("Cannot check the permissions of %s: %s", path, e)
        return False
    try:
        if not mode & 0o077 or not holds_secret(path.read_text("utf-8", errors="replace")):
            return False
        os.chmod(path, PRIVATE_MODE)
    except OSError as e:
        log.warning("Cannot check the permissions of %s: %s", path, e)
        return False
    log.warning("%s holds an API key and was readable by others; made it owner-only", path)
    return True
