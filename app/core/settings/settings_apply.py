"""Use new settings in a running core: the settings source, the catalogue (and so the API
and the tray) change at once; running servers keep their process and say "restart to apply".

A server whose model file the new settings no longer name under its key is not used for
that key again: the next request loads the file the catalogue names.
"""

from __future__ import annotations

import asyncio
import logging

from app.config import Settings
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.settings.live import LiveSettings

log = logging.getLogger(__name__)

# Settings read only when the app starts.
RESTART_KEYS = (
    "LLAMA_SERVER_PATH",
    "API_HOST",
    "API_PORT",
    "API_KEY",
    "API_ENABLED",
    "API_ALLOW_REMOTE",
    "API_ALLOWED_HOSTS",
    "API_CORS_ORIGINS",
    "API_MAX_BODY_MB",
    "API_BODY_TIMEOUT_SECONDS",
    "API_MAX_CONNECTIONS",
)


def apply_settings(live: LiveSettings, lifecycle: ModelLifecycle, new: Settings) -> list[str]:
    """Put ``new`` in force; return one line per server still running with old settings.

    Must be called on the event loop: a change of ``MODEL_DIRS`` rescans the folders there.
    """
    old = live.current
    live.set(new)
    catalogue = lifecycle.catalogue
    catalogue.refresh()
    if old.MODEL_DIRS != new.MODEL_DIRS:
        task = asyncio.get_running_loop().create_task(catalogue.rescan(), name="rescan")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    stale = []
    for inst in lifecycle.snapshot():
        if not inst.status.state.alive or inst.stale is None:
            continue
        stale.append(f"{inst.title} on port {inst.port} {inst.stale}.")
    changed = [k for k in RESTART_KEYS if getattr(old, k) != getattr(new, k)]
    if changed:
        stale.append(f"{', '.join(changed)} take effect when the app is started again.")
    return stale
