"""The forwarded ``load`` / ``unload`` / ``rescan`` verbs (``familylog-tray --load``,
``--unload``, ``--rescan``): the running app answers them through
``app.core.lifecycle.commands`` when the work is done."""

from __future__ import annotations

from app.core.app_core import AppCore
from app.core.lifecycle.commands import load_command, rescan_command, unload_command
from app.ui.single_instance import Handler, Reply


def model_verbs(core: AppCore) -> dict[str, Handler]:
    async def load(key: str, ctx: int | None = None) -> str:
        return Reply(*await load_command(core.lifecycle, key, ctx, core.api_url())).line()

    async def unload(key: str) -> str:
        return Reply(*await unload_command(core.lifecycle, key)).line()

    async def rescan() -> str:
        return Reply(*await rescan_command(core.rescanner)).line()

    return {"load": load, "unload": unload, "rescan": rescan}
