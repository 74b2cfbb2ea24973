"""Which options a llama-server build takes, read from its ``--help`` once per binary file.

llama.cpp renames options between builds (``--draft-max`` became ``--spec-draft-n-max``, and a
draft model now needs ``--spec-type draft-simple``); an option a build does not know makes it
exit at start. The per-model settings ask here which spelling to use. An option the help
marks as removed is not counted as known.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HELP_TIMEOUT = 10.0
_cache: dict[tuple[str, int, int], frozenset[str] | None] = {}
_lock = threading.Lock()


def parse_help(text: str) -> frozenset[str]:
    """The options a ``--help`` text lists (``-c``, ``--ctx-size``, ...), without the ones
    it says were removed."""
    out: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("-"):
            continue
        names: list[str] = []
        for token in line.split():
            if not token.startswith("-"):
                break
            names.append(token.rstrip(","))
            if not token.endswith(","):
                break
        if "has been removed" not in line:
            out.update(n for n in names if len(n) > 1)
    return frozenset(out)


def known_options(
    binary: str | Path, spawn_kwargs: dict[str, Any] | None = None
) -> frozenset[str] | None:
    """The options ``binary`` takes; None when its help cannot be read (then the newest
    spellings are used). Blocking (runs the binary once per file version): call it off
    the event loop. ``spawn_kwargs``: the platform's (no console window on Windows)."""
    path = Path(binary)
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _lock:
        if key in _cache:
            return _cache[key]
    try:
        done = subprocess.run(
            [str(path), "--help"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=HELP_TIMEOUT,
            stdin=subprocess.DEVNULL,
            **(spawn_kwargs or {}),
        )
        found: frozenset[str] | None = parse_help(done.stdout + "\n" + done.stderr) or None
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("Cannot read the options of %s (--help): %s", path, e)
        found = None
    with _lock:
        _cache[key] = found
    return found
