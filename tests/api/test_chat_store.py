"""/api/v1/chat's stored chats stay within API_CHAT_STORE_MB, images included: the store
counts bytes, a message shared by the turns of one conversation once, and drops the least
recently used; end to end through the real API and llama-server."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from app.core.api.chat_v1 import MIB, ChatStore, message_bytes
from tests.api.conftest import client
from tests.support import images

LLM = "google/gemma-3-12b"


def _msg(text: str) -> dict:
    return {"role": "user", "content": text}


def test_the_least_recently_used_go_first_past_the_budget() -> None:
    size = message_bytes(_msg("x" * 1000))
    store = ChatStore(lambda: 2 * size)
    a = store.put([_msg("a" * 1000)])
    b = store.put([_msg("b" * 1000)])
    assert store.bytes == 2 * size and len(store) == 2
    assert store.get(a) is not None  # a is used again: b is now the oldest
    c = store.put([_msg("c" * 1000)])
    assert store.get(b) is None and store.get(a) is not None and store.get(c) is not None
    assert store.bytes == 2 * size


def test_turns_of_one_conversation_count_their_shared_messages_once() -> None:
    photo = _msg("i" * 100_000)  # stands for a message with an image
    store = ChatStore(lambda: 10 * MIB)
    first = [photo, {"role": "assistant", "content": "a cat"}]
    rid = store.put(first)
    assert rid is not None
    history = store.get(rid)
    assert history is not None
    second = [*history, _msg("and the dog?"), {"role": "assistant", "content": "none"}]
    store.put(second)
    assert store.bytes == sum(message_bytes(m) for m in second)  # the photo once, not twice
    store._drop(rid)  # the first turn goes: the photo stays, the second turn holds it
    assert store.bytes == sum(message_bytes(m) for m in second)


def test_a_chat_larger_than_the_budget_is_not_kept() -> None:
    store = ChatStore(lambda: 1000)
    kept = store.put([_msg("small")])
    assert store.put([_msg("x" * 2000)]) is None
    assert store.get(kept) is not None and len(store) == 1  # nothing else was dropped for it
    assert ChatStore(lambda: 0).put([_msg("a")]) is None  # 0: keep none


def test_the_budget_is_read_live() -> None:
    budget = [10 * MIB]
    store = ChatStore(lambda: budget[0])
    ids = [store.put([_msg(str(i) * 1000)]) for i in range(5)]
    budget[0] = store.bytes // 2  # a smaller setting counts at the next turn
    store.put([_msg("n")])
    assert store.bytes <= budget[0]
    assert store.get(ids[0]) is None and store.get(ids[-1]) is not None


@pytest.mark.parametrize("stream", [False, True])
async def test_stored_chats_with_images_stay_within_the_setting(
    start_api, tiny_vision, stream: bool
) -> None:
    """Each chat carries a ~0.5 MiB image; with API_CHAT_STORE_MB=1.2 two fit, the third
    pushes out the least recently used, and a continued chat still finds its image."""
    noise = Image.frombytes("RGB", (360, 360), os.urandom(360 * 360 * 3))  # PNG cannot shrink it
    url = images.data_url(images.png(noise))
    assert 0.4 * MIB < len(url) < 0.6 * MIB
    model, mmproj = tiny_vision
    core = await start_api(
        VISION_MODEL_GGUF=str(model), VISION_MMPROJ=str(mmproj), API_CHAT_STORE_MB=1.2
    )
    vlm = "qwen/qwen3-vl-8b"

    async def ask(previous: str | None = None, image: bool = True) -> dict:
        items = [{"type": "message", "content": "What is this?"}]
        if image:
            items.append({"type": "image", "data_url": url})
        body = {"model": vlm, "input": items, "max_output_tokens": 2, "stream": stream}
        if previous:
            body["previous_response_id"] = previous
        async with client(core) as c:
            r = await c.post("/api/v1/chat", json=body)
        assert r.status_code in (200, 404), r.text
        if r.status_code == 404:
            return r.json()
        if stream:
            last = [ln for ln in r.text.splitlines() if ln.startswith("data: ")][-1]
            return json.loads(last[6:])["result"]
        return r.json()

    first, second = await ask(), await ask()
    more = await ask(first["response_id"], image=False)  # the first is used again
    assert more["stats"]["input_tokens"] > first["stats"]["input_tokens"]  # its image came along
    await ask()  # a third image: the least recently used (the second) goes
    gone = await ask(second["response_id"], image=False)
    assert gone["error"]["code"] == "response_not_found"
    assert "API_CHAT_STORE_MB=1.2 MiB" in gone["error"]["message"]
    kept = await ask(more["response_id"], image=False)
    assert "response_id" in kept
