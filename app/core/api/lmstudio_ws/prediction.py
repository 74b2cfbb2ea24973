"""One prediction: LM Studio's chat history and prediction config as a llama-server request,
and llama-server's stream as the SDK's messages (prompt progress, fragments as they come,
tool calls, then the stats from llama-server's ``timings``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from app.core.api.common import shown
from app.core.api.lmstudio_ws.channels import Channel
from app.core.api.lmstudio_ws.errors import SdkError, not_served
from app.core.api.lmstudio_ws.kv import checked, collapse, layer_names
from app.core.api.rest_v0 import STOP_REASONS
from app.core.api.speed import Meter

P = "llm.prediction."
# LM Studio's prediction settings that llama-server takes, by its field name. A "checkbox"
# setting ({"checked", "value"}) is sent only when checked.
PASSED = {
    P + "temperature": "temperature",
    P + "maxPredictedTokens": "max_tokens",
    P + "topKSampling": "top_k",
    P + "topPSampling": "top_p",
    P + "minPSampling": "min_p",
    P + "repeatPenalty": "repeat_penalty",
    P + "stopStrings": "stop",
    P + "seed": "seed",
    P + "llama.presencePenalty": "presence_penalty",
    P + "llama.frequencyPenalty": "frequency_penalty",
    P + "llama.xtcProbability": "xtc_probability",
    P + "llama.xtcThreshold": "xtc_threshold",
    P + "llama.locallyTypicalSampling": "typical_p",
}
_INTS = {"max_tokens", "top_k", "seed"}
RAW_LAYER = "completeModeFormatting"  # lmstudio-python's .complete(): no chat template


@dataclass
class Request:
    """What goes to llama-server, and the settings it came from (echoed in the result)."""

    path: str
    body: dict[str, Any]
    config: dict[str, Any]


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise SdkError(f"A chat message's content must be a list of parts, not {content!r:.100}")
    return [p for p in content if isinstance(p, dict)]


def messages(history: Any) -> list[dict[str, Any]]:
    """LM Studio's chat history as OpenAI chat messages (tool calls and results included)."""
    msgs = history.get("messages") if isinstance(history, dict) else None
    if not isinstance(msgs, list):
        raise SdkError('"history" must be {"messages": [...]}')
    out: list[dict[str, Any]] = []
    for m in msgs:
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "user", "assistant", "tool"):
            raise SdkError(
                f"Unknown chat role {shown(role)}: expected system, user, assistant or tool"
            )
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in _parts(m):
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind == "toolCallRequest":
                req = part.get("toolCallRequest") or {}
                calls.append(
                    {
                        "id": req.get("id") or f"call_{len(calls)}",
                        "type": "function",
                        "function": {
                            "name": req.get("name", ""),
                            "arguments": json.dumps(req.get("arguments") or {}),
                        },
                    }
                )
            elif kind == "toolCallResult":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": part.get("toolCallId"),
                        "content": str(part.get("content", "")),
                    }
                )
            elif kind == "file":
                raise not_served("files", "file", "prepare_image")
            else:
                raise SdkError(f"Unknown chat message part {shown(kind)}")
        if role == "tool":
            continue
        msg: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, name in PASSED.items():
        value = checked(config.get(key))
        if value is None or value == []:
            continue
        if name in _INTS and isinstance(value, float) and value.is_integer():
            value = int(value)
        body[name] = value
    structured = config.get(P + "structured")
    if isinstance(structured, dict):
        if structured.get("type") == "json" and isinstance(structured.get("jsonSchema"), dict):
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"schema": structured["jsonSchema"]},
            }
        elif structured.get("type") == "gbnf" and isinstance(structured.get("gbnfGrammar"), str):
            body["grammar"] = structured["gbnfGrammar"]
    tools = config.get(P + "tools")
    if isinstance(tools, dict) and tools.get("type") == "toolArray" and tools.get("tools"):
        body["tools"] = tools["tools"]
    return body


def chat_request(history: Any, stack: Any) -> Request:
    """A ``predict`` channel's request: a chat, or a raw completion when the SDK asked for
    one (``.complete()`` in lmstudio-python sends a template that joins the contents)."""
    config = collapse(stack, "predictionConfigStack")
    msgs = messages(history)
    if RAW_LAYER in layer_names(stack):
        return raw_request("".join(m["content"] or "" for m in msgs), stack)
    body = {"messages": msgs, **_settings(config)}
    return Request("/v1/chat/completions", _streamed(body), config)


def raw_request(prompt: Any, stack: Any) -> Request:
    if not isinstance(prompt, str):
        raise SdkError(f'"rawPrompt" must be a string, not {prompt!r:.100}')
    config = collapse(stack, "predictionConfigStack")
    settings = _settings(config)
    settings.pop("tools", None)
    return Request("/v1/completions", _streamed({"prompt": prompt, **settings}), config)


def _streamed(body: dict[str, Any]) -> dict[str, Any]:
    return {
        **body,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_progress": True,  # prompt processing progress, as LM Studio sends it
    }


def _fragment(content: str, reasoning: str = "none") -> dict[str, Any]:
    return {
        "type": "fragment",
        "fragment": {
            "content": content,
            "tokensCount": 1 if reasoning in ("none", "reasoning") else 0,
            "containsDrafted": False,
            "reasoningType": reasoning,
            "isStructural": False,
        },
    }


@dataclass
class Prediction:
    """The SDK's side of one streamed answer from llama-server."""

    ch: Channel
    meter: Meter
    started: float = field(default_factory=time.monotonic)
    first_ms: float | None = None
    fragments: int = 0
    finish: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    thinking: bool = False

    async def feed(self, line: bytes) -> None:
        """One line of llama-server's event stream."""
        self.meter.chunk(line)
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith("data: ") or text == "data: [DONE]":
            return
        try:
            chunk = json.loads(text[6:])
        except ValueError:
            return
        if not isinstance(chunk, dict):
            return
        self.usage = chunk.get("usage") or self.usage
        self.timings = chunk.get("timings") or self.timings
        progress = chunk.get("prompt_progress")
        if isinstance(progress, dict):
            await self._progress(progress)
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                await self._choice(choice)

    async def _progress(self, p: dict[str, Any]) -> None:
        total = int(p.get("total") or 0)
        done = int(p.get("processed") or 0)
        await self.ch.send(
            {
                "type": "promptProcessingProgress",
                "progress": min(1.0, done / total) if total else 1.0,
                "details": {
                    "cachedTokenCount": int(p.get("cache") or 0),
                    "totalPromptTokenCount": total,
                    "processedPromptTokenCount": done,
                    "unprocessedPromptTokenCount": max(0, total - done),
                },
            }
        )

    async def _choice(self, choice: dict[str, Any]) -> None:
        self.finish = choice.get("finish_reason") or self.finish
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content")
        if reasoning:
            if not self.thinking:
                self.thinking = True
                await self.ch.send(_fragment("<think>", "reasoningStartTag"))
            await self._text(reasoning, "reasoning")
        content = delta.get("content") if "delta" in choice else choice.get("text")
        if content:
            if self.thinking:
                self.thinking = False
                await self.ch.send(_fragment("</think>", "reasoningEndTag"))
            await self._text(content, "none")
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                await self._tool_delta(call)

    async def _text(self, content: str, kind: str) -> None:
        if self.first_ms is None:
            self.first_ms = (time.monotonic() - self.started) * 1000
        self.fragments += 1
        await self.ch.send(_fragment(content, kind))

    async def _tool_delta(self, call: dict[str, Any]) -> None:
        index = call.get("index", len(self.calls))
        fn = call.get("function") or {}
        mine = self.calls.get(index)
        if mine is None:
            mine = self.calls[index] = {"id": call.get("id"), "name": "", "arguments": ""}
            start = {"type": "toolCallGenerationStart"}
            if call.get("id"):
                start["toolCallId"] = call["id"]
            await self.ch.send(start)
        if fn.get("name"):
            mine["name"] += fn["name"]
            await self.ch.send({"type": "toolCallGenerationNameReceived", "name": fn["name"]})
        if fn.get("arguments"):
            mine["arguments"] += fn["arguments"]
            await self.ch.send(
                {"type": "toolCallGenerationArgumentFragmentGenerated", "content": fn["arguments"]}
            )

    async def end_tool_calls(self) -> None:
        """Each tool call the model made, complete (the SDK's .act() runs them)."""
        for call in self.calls.values():
            try:
                args = json.loads(call["arguments"] or "{}")
            except ValueError as e:
                args = None
                why = f"its arguments are not JSON ({e}): {call['arguments'][:200]}"
            else:
                why = "its arguments are not a JSON object"
            if not isinstance(args, dict):
                await self.ch.send(
                    {
                        "type": "toolCallGenerationFailed",
                        "error": SdkError(
                            f"The model's call of {call['name']!r} failed: {why}"
                        ).wire(),
                        "rawContent": call["arguments"],
                    }
                )
                continue
            request = {"type": "function", "name": call["name"], "arguments": args}
            if call["id"]:
                request["id"] = call["id"]
            await self.ch.send(
                {
                    "type": "toolCallGenerationEnd",
                    "toolCallRequest": request,
                    "rawContent": call["arguments"],
                }
            )

    def stats(self, cancelled: bool) -> dict[str, Any]:
        """LM Studio's prediction stats, from llama-server's usage and timings."""
        t, u = self.timings, self.usage
        reason = "userStopped" if cancelled else STOP_REASONS.get(self.finish or "", "eosFound")
        prompt = u.get("prompt_tokens")
        if prompt is None and "prompt_n" in t:
            prompt = int(t["prompt_n"]) + int(t.get("cache_n") or 0)
        predicted = u.get("completion_tokens", t.get("predicted_n", self.fragments))
        out: dict[str, Any] = {
            "stopReason": reason,
            "totalTimeSec": round(time.monotonic() - self.started, 4),
            "predictedTokensCount": int(predicted),
        }
        if t.get("predicted_per_second") is not None:
            out["tokensPerSecond"] = t["predicted_per_second"]
        if "prompt_ms" in t:
            out["timeToFirstTokenSec"] = round(t["prompt_ms"] / 1000, 4)
        elif self.first_ms is not None:
            out["timeToFirstTokenSec"] = round(self.first_ms / 1000, 4)
        if prompt is not None:
            out["promptTokensCount"] = int(prompt)
            out["totalTokensCount"] = int(prompt) + int(predicted)
        return out
