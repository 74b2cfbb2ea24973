"""The ``system`` namespace: the downloaded models (every model of the catalogue), their
variants, the version, and the ``alive`` channel that stays open while the app runs."""

from __future__ import annotations

import os
from typing import Any

from app import __version__
from app.core.api.lmstudio_ws.channels import Channel
from app.core.api.lmstudio_ws.errors import no_model
from app.core.api.lmstudio_ws.info import model_info
from app.core.api.lmstudio_ws.instances import param_of
from app.core.api.lmstudio_ws.state import Session


async def list_downloaded_models(s: Session, _param: Any) -> list[dict[str, Any]]:
    return [model_info(e) for e in s.c.catalogue.entries()]


async def list_downloaded_model_variants(s: Session, param: Any) -> list[dict[str, Any]]:
    """The quantizations of one model folder (keys ``<key>@<quant>``), or the model alone."""
    key = param_of(param).get("modelKey")
    base = key.split("@", 1)[0] if isinstance(key, str) else ""
    found = [
        model_info(e)
        for e in s.c.catalogue.entries()
        if base and (e.key == base or e.key.startswith(base + "@"))
    ]
    if not found:
        known = s.c.catalogue.known_keys()
        raise no_model(str(key), "model", [i.key for i in s.c.lifecycle.loaded()], known)
    return found


async def version(_s: Session, _param: Any) -> dict[str, Any]:
    return {"version": __version__, "build": 0}


async def info(_s: Session, _param: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "isDaemon": False, "version": __version__}


async def alive(_s: Session, ch: Channel, _param: Any) -> None:
    """Open until the client closes it (or the app stops, which ends the connection)."""
    await ch.cancelled.wait()


RPC = {
    "listDownloadedModels": list_downloaded_models,
    "listDownloadedModelVariants": list_downloaded_model_variants,
    "version": version,
    "info": info,
}
CHANNELS = {"alive": alive}
