"""The verbs a second start forwards to the running app: ``show``, ``logs`` and
``process-now`` (``familylog-tray``, ``--logs``, ``--process-now``), and ``load`` /
``unload`` / ``rescan`` (``--load``, ``--unload``, ``--rescan``), which the running app
answers through ``app.core.lifecycle.commands`` when the work is done."""

from __future__ import annotations

from collections.abc import Callable

from app.core.app_core import AppCore
from app.core.lifecycle.commands import load_command, rescan_command, unload_command
from app.ui.hooks import UiHooks
from app.ui.single_instance import Handler, Reply


def model_verbs(core: AppCore) -> dict[str, Handler]:
    async def load(key: str, ctx: int | None = None) -> str:
        return Reply(*await load_command(core.lifecycle, key, ctx, core.api_url())).line()

    async def unload(key: str) -> str:
        return Reply(*await unload_command(core.lifecycle, key)).line()

    async def rescan() -> str:
        return Reply(*await rescan_command(core.rescanner)).line()

    return {"load": load, "unload": unload, "rescan": rescan}


def window_verbs(
    show_models: Callable[[], None],
    hooks: UiHooks,
    process_now: Callable[[str], str] | None,
) -> dict[str, Handler]:
    """``show`` (the models window), ``logs`` (the log window) and ``process-now`` (a
    FamilyLog run; ``process_now`` is None without runs)."""

    def show() -> str:
        show_models()
        return "ok: the models window is open"

    def logs() -> str:
        if hooks.show_logs is None:
            return "error: the log window is not available in this version"
        hooks.show_logs()
        return "ok: the log window is open"

    def run_now() -> str:
        if process_now is None:
            return "error: FamilyLog runs are not available in this version"
        return process_now("command line")

    return {"show": show, "logs": logs, "process-now": run_now}
