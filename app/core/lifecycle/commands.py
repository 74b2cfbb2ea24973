"""``familylog-tray --load KEY [--ctx N]`` and ``--unload KEY|all`` as the running app
answers them: through the one lifecycle, with a sentence for a person. Qt-free.

Each returns ``(ok, message)``; the tray's single-instance channel (``app.ui.verbs``)
carries it back to the command line, which prints the message and exits 0 when ``ok``.
"""

from __future__ import annotations

import time

from app.core.lifecycle.files import Rescanner
from app.core.lifecycle.instance import Instance, LoadFailedError
from app.core.lifecycle.lifecycle import ModelLifecycle
from app.core.models.catalogue import UnknownModelError
from app.core.models.launch_args import LoadConfig

Result = tuple[bool, str]
KNOWN_SHOWN = 5  # how many known keys an "unknown model" answer lists


def unknown_model(e: UnknownModelError) -> str:
    known = e.known
    if not known:
        return (
            f"There is no model called '{e.name}', and the app knows none yet: set "
            "VISION_MODEL_GGUF / LLM_MODEL_GGUF in Settings or put GGUF files in MODEL_DIRS."
        )
    listed = ", ".join(known[:KNOWN_SHOWN])
    more = f" and {len(known) - KNOWN_SHOWN} more" if len(known) > KNOWN_SHOWN else ""
    return (
        f"There is no model called '{e.name}'. Known models: {listed}{more} "
        "(familylog-tray --show lists them all)."
    )


def _context(inst: Instance) -> str:
    ctx = inst.status.spec.ctx_size if inst.status.spec else 0
    return f"context {ctx:,} tokens" if ctx else "the model's own context length"


async def load_command(
    lifecycle: ModelLifecycle, key: str, ctx: int | None = None, api_url: str | None = None
) -> Result:
    """Load ``key`` (a key or alias) with an optional context length; the lifecycle loads
    it once however many ask, and reloads an idle one that runs with another context. The
    answer says where clients ask for it when the app's API is at ``api_url``."""
    try:
        entry = lifecycle.entry(key)
    except UnknownModelError as e:
        return False, unknown_model(e)
    name = entry.key if entry.title == entry.key else f"{entry.title} ({entry.key})"
    before = lifecycle.ready(entry)
    started = time.monotonic()
    try:
        inst = await lifecycle.ensure(entry, LoadConfig(context_length=ctx))
    except LoadFailedError as e:
        return False, str(e)
    if before is not None and before.port == inst.port and before.status.pid == inst.pid:
        return True, f"{name} was already loaded ({_context(inst)}); nothing to do."
    took = time.monotonic() - started
    where = f'; clients ask for "{entry.key}" at {api_url}' if api_url else ""
    return True, f"Loaded {name} in {took:.1f} s ({_context(inst)}){where}."


async def unload_command(lifecycle: ModelLifecycle, key: str) -> Result:
    """Unload ``key``, or every model with ``all`` (a model that is not loaded: nothing to
    do, and that is no failure). The answer says what actually happened: a model whose
    process is still there afterwards is a failure, named."""
    started = time.monotonic()
    if key == "all":
        names = [i.key for i in lifecycle.snapshot()]
        await lifecycle.unload_all()
        took = time.monotonic() - started
        left = [i.key for i in lifecycle.snapshot() if i.state.alive]
        if left:
            return False, f"Could not unload {', '.join(left)}: still running (see the log)."
        if not names:
            return True, "No model was loaded; nothing to do."
        return True, f"Unloaded {len(names)} model(s) in {took:.1f} s: {', '.join(names)}."
    try:
        entry = lifecycle.entry(key)
    except UnknownModelError as e:
        return False, unknown_model(e)
    ports = await lifecycle.unload(entry)
    if not ports:
        return True, f"{entry.key} was not loaded; nothing to do."
    still = lifecycle.instance(entry)
    if still is not None:
        return False, (
            f"Could not unload {entry.key}: its server on port {still.port} is still "
            f"{still.state} (see the log)."
        )
    took = time.monotonic() - started
    return True, f"Unloaded {entry.key} in {took:.1f} s."


async def rescan_command(rescanner: Rescanner) -> Result:
    """Read the model folders again; what changed, in words."""
    result = await rescanner.rescan()
    return True, f"Rescanned the model folders: {result.words()}."
