"""The prediction translation on its own: LM Studio's history and settings to llama-server's
request, and llama-server's stream (in its real format) to the SDK's messages, read back by
the real SDK's own parser. Tool calls are covered here: the tiny test models never make
one."""

from __future__ import annotations

import json

import pytest
from lmstudio.history import Chat
from lmstudio.json_api import ChatResponseEndpoint, PredictionToolCallEvent

from app.core.api.lmstudio_ws.channels import Channel
from app.core.api.lmstudio_ws.errors import SdkError
from app.core.api.lmstudio_ws.prediction import Prediction, chat_request, messages
from app.core.api.speed import Meter
from app.core.models.stats import SpeedStats


def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
    event = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(event).encode() + b"\n"


def stack(*fields: tuple[str, object]) -> dict:
    return {
        "layers": [
            {
                "layerName": "apiOverride",
                "config": {"fields": [{"key": k, "value": v} for k, v in fields]},
            }
        ]
    }


async def run(lines: list[bytes]) -> tuple[list[dict], Prediction]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message["message"])

    pred = Prediction(Channel(1, "predict", send), Meter(SpeedStats(), "m"))
    for line in lines:
        await pred.feed(line)
    await pred.end_tool_calls()
    return sent, pred


async def test_tool_calls_reach_the_sdk_as_tool_call_requests() -> None:
    # llama-server's streamed tool call: the id and name first, the arguments in pieces
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "add"}}
    lines = [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1, '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"b": 2}'}}]}),
        chunk({}, "tool_calls"),
        b"data: [DONE]\n",
    ]
    sent, pred = await run(lines)
    kinds = [m["type"] for m in sent]
    assert kinds == [
        "toolCallGenerationStart",
        "toolCallGenerationNameReceived",
        "toolCallGenerationArgumentFragmentGenerated",
        "toolCallGenerationArgumentFragmentGenerated",
        "toolCallGenerationEnd",
    ]
    assert pred.stats(cancelled=False)["stopReason"] == "toolCalls"

    # the real SDK reads them as the tool call its .act() runs
    chat = Chat()
    chat.add_user_message("add")

    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    tools, client_tools = ChatResponseEndpoint.parse_tools([add])
    endpoint = ChatResponseEndpoint("m", chat, llm_tools=tools, client_tool_map=client_tools)
    events = [e for m in sent for e in endpoint.iter_message_events(m)]
    (request,) = [e.arg for e in events if isinstance(e, PredictionToolCallEvent)]
    assert request.name == "add" and request.id == "call_1"
    assert request.arguments == {"a": 1, "b": 2}
    assert endpoint.request_tool_call(request)().content == "3"


async def test_a_tool_call_with_broken_arguments_is_reported() -> None:
    call = {"index": 0, "id": "c", "function": {"name": "add", "arguments": '{"a": '}}
    sent, _ = await run([chunk({"tool_calls": [call]}), chunk({}, "tool_calls")])
    failed = sent[-1]
    assert failed["type"] == "toolCallGenerationFailed"
    assert "not JSON" in failed["error"]["title"] and failed["rawContent"] == '{"a": '


async def test_fragments_progress_and_stats_from_timings() -> None:
    timings = {"prompt_n": 10, "cache_n": 2, "prompt_ms": 5.0, "predicted_n": 2}
    timings |= {"predicted_ms": 4.0, "predicted_per_second": 500.0}
    lines = [
        chunk({}, prompt_progress={"total": 12, "cache": 2, "processed": 12, "time_ms": 5}),
        chunk({"reasoning_content": "hm"}),
        chunk({"content": "Hi"}),
        chunk({"content": "!"}, "length"),
        b"data: " + json.dumps({"choices": [], "timings": timings}).encode() + b"\n",
    ]
    sent, pred = await run(lines)
    assert sent[0]["type"] == "promptProcessingProgress" and sent[0]["progress"] == 1.0
    assert sent[0]["details"]["cachedTokenCount"] == 2
    texts = [(m["fragment"]["content"], m["fragment"]["reasoningType"]) for m in sent[1:]]
    assert texts == [
        ("<think>", "reasoningStartTag"),
        ("hm", "reasoning"),
        ("</think>", "reasoningEndTag"),
        ("Hi", "none"),
        ("!", "none"),
    ]
    stats = pred.stats(cancelled=False)
    assert stats["stopReason"] == "maxPredictedTokensReached"
    assert stats["tokensPerSecond"] == 500.0 and stats["timeToFirstTokenSec"] == 0.005
    assert stats["promptTokensCount"] == 12 and stats["predictedTokensCount"] == 2
    assert pred.stats(cancelled=True)["stopReason"] == "userStopped"


def test_history_and_settings_to_llama_server() -> None:
    history = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "toolCallRequest",
                        "toolCallRequest": {
                            "type": "function",
                            "id": "c1",
                            "name": "add",
                            "arguments": {"a": 1},
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "content": [{"type": "toolCallResult", "content": "2", "toolCallId": "c1"}],
            },
        ]
    }
    msgs = messages(history)
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[1] == {"role": "user", "content": "a\nb"}
    assert msgs[2]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1}'}
    assert msgs[3] == {"role": "tool", "tool_call_id": "c1", "content": "2"}

    req = chat_request(
        history,
        stack(
            ("llm.prediction.maxPredictedTokens", {"checked": True, "value": 7}),
            ("llm.prediction.topPSampling", {"checked": False, "value": 0.5}),
            ("llm.prediction.topKSampling", 20.0),
            ("llm.prediction.stopStrings", ["\n\n"]),
            ("llm.prediction.structured", {"type": "gbnf", "gbnfGrammar": 'root ::= "x"'}),
            ("llm.prediction.tools", {"type": "toolArray", "tools": [{"type": "function"}]}),
        ),
    )
    body = req.body
    assert req.path == "/v1/chat/completions" and body["stream"] is True
    assert body["max_tokens"] == 7 and "top_p" not in body and body["top_k"] == 20
    assert body["stop"] == ["\n\n"] and body["grammar"] == 'root ::= "x"'
    assert body["tools"] == [{"type": "function"}]

    with pytest.raises(SdkError, match="Unknown chat role"):
        messages({"messages": [{"role": "robot", "content": []}]})
    with pytest.raises(SdkError, match="does not serve uploading files"):
        messages({"messages": [{"role": "user", "content": [{"type": "file"}]}]})
