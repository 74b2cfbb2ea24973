"""Use new settings in a running core: the settings source, the catalogue (and so the API
and the tray) change at once; running servers keep their process and say "restart to apply".

How each changed setting takes effect comes from its field (``app.config.applies``): at
once, from the next load of a model, or after a restart of the app. ``apply_settings``
returns those lines for Settings… to show.

A server whose model file the new settings no longer name under its key is not used for
that key again: the next request loads the file the catalogue names.
"""

from __future__ import annotations

import asyncio

from app.config import Applies, Settings, applies
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.settings.live import LiveSettings

# What Settings… says of the changed settings, by how they take effect.
HOW = {
    Applies.NOW: "In effect now: {}.",
    Applies.NEXT_LOAD: "From the next load of a model: {}.",
    Applies.RESTART: "After restart (the app reads these only when it starts): {}.",
}


def changed(old: Settings, new: Settings) -> list[str]:
    """The names of the settings whose values differ, in the model's order."""
    return [name for name in Settings.model_fields if getattr(old, name) != getattr(new, name)]


def how_they_apply(names: list[str]) -> list[str]:
    """One line per way the settings ``names`` take effect, e.g. "In effect now: Run mode
    (RUN_MODE)."; nothing for no names."""
    lines = []
    for how, text in HOW.items():
        shown = [f"{Settings.model_fields[n].title or n} ({n})" for n in names if applies(n) is how]
        if shown:
            lines.append(text.format(", ".join(shown)))
    return lines


def not_yet(lines: list[str]) -> list[str]:
    """Those of ``apply_settings``'s lines that tell of something not in effect yet."""
    return [line for line in lines if not line.startswith(HOW[Applies.NOW].split("{")[0])]


async def apply_settings(live: LiveSettings, lifecycle: ModelLifecycle, new: Settings) -> list[str]:
    """Put ``new`` in force; return how the changed settings take effect, and one line per
    server still running with old settings.

    The header of a role's new model file is read first, in a worker thread (about 28 ms
    for a 150k-token vocabulary, which the loop serving the API and the tray must not
    wait for); then the settings and the catalogue change at once. A change of
    ``MODEL_DIRS`` rescans the folders after.
    """
    await asyncio.to_thread(lifecycle.catalogue.read_role_headers, new)
    old = live.current
    live.set(new)
    catalogue = lifecycle.catalogue
    catalogue.refresh()
    if old.MODEL_DIRS != new.MODEL_DIRS:
        task = asyncio.get_running_loop().create_task(catalogue.rescan(), name="rescan")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    lines = how_they_apply(changed(old, new))
    for inst in lifecycle.snapshot():
        if not inst.status.state.alive or inst.stale is None:
            continue
        lines.append(f"{inst.title} on port {inst.port} {inst.stale}.")
    return lines
