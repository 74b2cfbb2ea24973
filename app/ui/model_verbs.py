"""The forwarded ``load`` / ``unload`` verbs (``familylog-tray --load/--unload``): the
running app answers them through ``app.cli.model_answers`` when the load is done."""

from __future__ import annotations

from app.cli.model_answers import load_command, unload_command
from app.core.app_core import AppCore
from app.ui.single_instance import Handler, Reply


def model_verbs(core: AppCore) -> dict[str, Handler]:
    async def load(key: str, ctx: int | None = None) -> str:
        return Reply(*await load_command(core, key, ctx)).line()

    async def unload(key: str) -> str:
        return Reply(*await unload_command(core, key)).line()

    return {"load": load, "unload": unload}
