"""The ``llm`` namespace: what it shares with ``embedding``, plus predictions (``respond``,
``respond_stream``, ``complete``, ``act``) and ``applyPromptTemplate``.

A prediction holds its model through the lifecycle for as long as it streams (so eviction
waits for it), feeds the live speed statistics as the REST routes do, and stops llama-server
when the client cancels the channel or goes away: the upstream connection is closed.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from app.core.api.lmstudio_ws.channels import Channel
from app.core.api.lmstudio_ws.errors import SdkError
from app.core.api.lmstudio_ws.info import instance_info
from app.core.api.lmstudio_ws.instances import SHARED_RPC, ask, param_of
from app.core.api.lmstudio_ws.kv import fields, running_fields
from app.core.api.lmstudio_ws.loading import get_or_load, load_model
from app.core.api.lmstudio_ws.models import resolve, using
from app.core.api.lmstudio_ws.prediction import (
    Prediction,
    Request,
    chat_request,
    messages,
    raw_request,
)
from app.core.api.lmstudio_ws.state import Session
from app.core.api.speed import Meter
from app.core.api.upstream import post_upstream
from app.core.models.entry import ModelEntry


async def _read(pred: Prediction, up: aiohttp.ClientResponse) -> None:
    async for line in up.content:
        await pred.feed(line)


async def _run(s: Session, ch: Channel, entry: ModelEntry, req: Request) -> None:
    async with using(s, entry) as inst:
        pred = Prediction(ch, Meter(s.c.stats, entry.key))
        up = await post_upstream(s.c, inst.port, req.path, json=req.body)
        try:
            if up.status != 200:
                raw = await up.read()
                raise SdkError(
                    f"llama-server refused the prediction for {entry.key} (HTTP {up.status})",
                    cause=raw[:500].decode("utf-8", "replace"),
                    suggestion=f"Read {s.c.log_path(inst.port)}",
                )
            try:
                _, cancelled = await ch.unless_cancelled(_read(pred, up))
            except aiohttp.ClientError as e:
                raise SdkError(
                    f"llama-server broke off the prediction for {entry.key}",
                    cause=str(e),
                    suggestion=f"Read {s.c.log_path(inst.port)}",
                ) from None
        finally:
            up.close()  # after a cancel: llama-server stops generating for it
        if not cancelled:
            pred.meter.done()
            await pred.end_tool_calls()
        await ch.send(
            {
                "type": "success",
                "stats": pred.stats(cancelled),
                "modelInfo": instance_info(s, inst),
                "loadModelConfig": running_fields(inst, "llm"),
                "predictionConfig": fields(req.config),
            }
        )


async def predict(s: Session, ch: Channel, param: Any) -> None:
    p = param_of(param)
    entry = resolve(s, p.get("modelSpecifier"))
    await _run(s, ch, entry, chat_request(p.get("history"), p.get("predictionConfigStack")))


async def complete_raw_text(s: Session, ch: Channel, param: Any) -> None:
    p = param_of(param)
    entry = resolve(s, p.get("modelSpecifier"))
    await _run(s, ch, entry, raw_request(p.get("rawPrompt"), p.get("predictionConfigStack")))


async def apply_prompt_template(s: Session, param: Any) -> dict[str, Any]:
    p = param_of(param)
    entry = resolve(s, p.get("specifier"))
    msgs = messages(p.get("history"))
    async with using(s, entry) as inst:
        data = await ask(s, inst, "/apply-template", {"messages": msgs})
    return {"formatted": str(data.get("prompt", ""))}


RPC = {**SHARED_RPC, "applyPromptTemplate": apply_prompt_template}
CHANNELS = {
    "loadModel": load_model,
    "getOrLoad": get_or_load,
    "predict": predict,
    "completeRawText": complete_raw_text,
}
