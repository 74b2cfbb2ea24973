"""The vision path against the real llama-server with a real projector (the tiny vision pair):
the vision role starts with --mmproj, an image reaches the projector through every route
that takes images (16 more prompt tokens than the text alone), phone photos are turned
upright, formats llama-server cannot read and image URLs are refused with a 400 that says
what to send instead, and a broken projector file is named as such."""

from __future__ import annotations

import math
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from aiohttp import web
from PIL import Image

from tests.api.conftest import base_url, client, servers
from tests.support import images
from tests.support.tiny_vision import (
    CRASHING,
    IMAGE_TOKENS,
    write_narrow_model,
    write_tiny_mmproj,
)

VLM = "qwen/qwen3-vl-8b"  # the vision role's key in api_settings
TEXT = "What is in this picture?"


@pytest.fixture
async def vision_api(start_api, tiny_vision):
    model, mmproj = tiny_vision

    async def start(**over):
        return await start_api(VISION_MODEL_GGUF=str(model), VISION_MMPROJ=str(mmproj), **over)

    return start


# ── Each surface: the prompt tokens of the text alone, and with one image ─────────────
async def _openai_chat(core, url: str | None) -> int:
    content: object = TEXT
    if url:
        content = [{"type": "text", "text": TEXT}, {"type": "image_url", "image_url": {"url": url}}]
    async with openai.AsyncOpenAI(base_url=base_url(core) + "/v1", api_key="x") as c:
        r = await c.chat.completions.create(
            model=VLM, messages=[{"role": "user", "content": content}], max_tokens=1
        )
    return r.usage.prompt_tokens


async def _lmstudio_v1_chat(core, url: str | None) -> int:
    items: list[dict] = [{"type": "message", "content": TEXT}]
    if url:
        items.append({"type": "image", "data_url": url})
    async with client(core) as c:
        r = await c.post(
            "/api/v1/chat", json={"model": VLM, "input": items, "max_output_tokens": 1}
        )
    assert r.status_code == 200, r.text
    return r.json()["stats"]["input_tokens"]


async def _lmstudio_v0_chat(core, url: str | None) -> int:
    content: object = TEXT
    if url:
        content = [{"type": "text", "text": TEXT}, {"type": "image_url", "image_url": {"url": url}}]
    body = {"model": VLM, "messages": [{"role": "user", "content": content}], "max_tokens": 1}
    async with client(core) as c:
        r = await c.post("/api/v0/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()["usage"]["prompt_tokens"]


async def _anthropic_messages(core, url: str | None) -> int:
    content: list[dict] = [{"type": "text", "text": TEXT}]
    if url:
        mime, data = url[5:].split(";base64,")
        content.append(
            {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
        )
    async with anthropic.AsyncAnthropic(base_url=base_url(core), api_key="x", max_retries=0) as c:
        msg = await c.messages.create(
            model=VLM, max_tokens=1, messages=[{"role": "user", "content": content}]
        )
    # Anthropic counts tokens read from llama-server's prompt cache apart
    return msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0)


async def _openai_responses(core, url: str | None) -> int:
    content: list[dict] = [{"type": "input_text", "text": TEXT}]
    if url:
        content.append({"type": "input_image", "image_url": url, "detail": "auto"})
    async with openai.AsyncOpenAI(base_url=base_url(core) + "/v1", api_key="x") as c:
        r = await c.responses.create(
            model=VLM, input=[{"role": "user", "content": content}], max_output_tokens=1
        )
    return r.usage.input_tokens


SURFACES = {
    "openai /v1/chat/completions": _openai_chat,
    "lmstudio /api/v1/chat": _lmstudio_v1_chat,
    "lmstudio /api/v0/chat/completions": _lmstudio_v0_chat,
    "anthropic /v1/messages": _anthropic_messages,
    "openai /v1/responses": _openai_responses,
}


async def test_vision_role_starts_with_its_projector(vision_api, tiny_vision) -> None:
    core = await vision_api()
    async with client(core) as c:
        listed = {m["id"]: m for m in (await c.get("/api/v0/models")).json()["data"]}
        assert listed[VLM]["type"] == "vlm"
        r = await c.post("/api/v1/models/load", json={"model": VLM})
        assert r.status_code == 200, r.text
    (proc,) = servers()
    cmd = proc.cmdline()
    assert cmd[cmd.index("--mmproj") + 1] == str(tiny_vision[1])


@pytest.mark.parametrize("surface", list(SURFACES))
async def test_an_image_reaches_the_projector(vision_api, surface: str) -> None:
    core = await vision_api()
    ask = SURFACES[surface]
    alone = await ask(core, None)
    for url in (
        images.data_url(images.png(), "image/png"),
        images.data_url(images.jpeg(orientation=6), "image/jpeg"),
    ):
        assert await ask(core, url) == alone + IMAGE_TOKENS, (surface, url[:30])


# ── Phone photos: turned upright as their EXIF says ─────────────────────────────────
async def _first_logprobs(c: httpx.AsyncClient, url: str) -> list[float]:
    body = {
        "model": VLM,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": TEXT},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 5,
        "cache_prompt": False,
    }
    r = await c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    top = r.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    return [t["logprob"] for t in top]


async def test_a_jpeg_with_an_exif_rotation_reaches_the_model_upright(vision_api) -> None:
    """The model sees what the photo shows: its logprobs match the picture turned as the EXIF
    tag says, not the stored pixels (llama-server itself ignores the tag)."""
    core = await vision_api()
    stored = images.picture()
    shown = stored.transpose(Image.Transpose.ROTATE_270)  # orientation 6: 90° clockwise
    async with client(core) as c:
        rotated_jpeg = await _first_logprobs(
            c, images.data_url(images.jpeg(stored, orientation=6), "image/jpeg")
        )
        upright = await _first_logprobs(c, images.data_url(images.png(shown)))
        sideways = await _first_logprobs(c, images.data_url(images.png(stored)))
    assert upright != sideways  # the model tells the two apart
    assert math.dist(rotated_jpeg, upright) < math.dist(rotated_jpeg, sideways) / 4


# ── Refused with a 400 that says what to send ───────────────────────────────────────
async def test_heic_and_other_unreadable_formats_are_refused_by_name(vision_api) -> None:
    core = await vision_api()
    async with client(core) as c:
        for mime, data, name in (
            ("image/heic", images.heic(), "HEIC"),
            ("image/webp", images.encode(images.picture(), "WEBP"), "WebP"),
            ("image/tiff", images.encode(images.picture(), "TIFF"), "TIFF"),
            ("image/png", b"not an image at all" * 4, "not an image llama-server can read"),
        ):
            content = [
                {"type": "text", "text": TEXT},
                {"type": "image_url", "image_url": {"url": images.data_url(data, mime)}},
            ]
            body = {"model": VLM, "messages": [{"role": "user", "content": content}]}
            r = await c.post("/v1/chat/completions", json=body)
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["code"] == "unsupported_image_format"
            assert name in err["message"] and "JPEG or PNG" in err["message"], err
            assert err["param"] == "messages[0].content[1]"
        # Anthropic's clients get Anthropic's error shape
        block = {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": "image/heic",
                "data": images.b64(images.heic()),
            },
        }
        r = await c.post(
            "/v1/messages",
            json={
                "model": VLM,
                "max_tokens": 1,
                "messages": [{"role": "user", "content": [block]}],
            },
        )
        assert r.status_code == 400 and r.json()["type"] == "error"
        assert "HEIC" in r.json()["error"]["message"]
    assert not servers()  # refused before any model was loaded


@pytest.fixture
async def image_host():
    """A web server on loopback that serves a PNG and counts who fetched it."""
    hits: list[str] = []
    body = images.png()

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=body, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


def _url_bodies(url: str) -> dict[str, dict]:
    """A request with an image URL for every route that takes images."""
    chat = [{"type": "text", "text": TEXT}, {"type": "image_url", "image_url": {"url": url}}]
    return {
        "/v1/chat/completions": {"model": VLM, "messages": [{"role": "user", "content": chat}]},
        "/api/v0/chat/completions": {"model": VLM, "messages": [{"role": "user", "content": chat}]},
        "/api/v1/chat": {"model": VLM, "input": [{"type": "image", "data_url": url}]},
        "/v1/messages": {
            "model": VLM,
            "max_tokens": 1,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": url}}],
                }
            ],
        },
        "/v1/messages/count_tokens": {
            "model": VLM,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": url}}],
                }
            ],
        },
        "/v1/responses": {
            "model": VLM,
            "input": [{"role": "user", "content": [{"type": "input_image", "image_url": url}]}],
        },
    }


async def test_image_urls_are_refused_unless_allowed(vision_api, image_host) -> None:
    host, hits = image_host
    core = await vision_api()
    async with client(core) as c:
        for url in (f"{host}/photo.png", "https://example.org/a.png", "file:///etc/passwd"):
            for path, body in _url_bodies(url).items():
                r = await c.post(path, json=body)
                assert r.status_code == 400, (path, r.text)
                message = r.json()["error"]["message"]
                assert "not fetched" in message and "inline" in message, (path, message)
                assert "API_ALLOW_IMAGE_URLS" in message
    assert hits == [] and not servers()  # nothing was fetched, no model was loaded


async def test_allowed_image_urls_are_fetched_by_llama_server(vision_api, image_host) -> None:
    host, hits = image_host
    core = await vision_api(API_ALLOW_IMAGE_URLS=True)
    url = f"{host}/photo.png"
    alone = await _openai_chat(core, None)
    assert await _openai_chat(core, url) == alone + IMAGE_TOKENS
    assert hits == ["/photo.png"]  # llama-server fetched it itself


# ── A broken projector file ─────────────────────────────────────────────────────────
@pytest.mark.parametrize("missing", CRASHING)
async def test_a_projector_that_crashes_llama_server_is_named_broken(
    start_api, tiny_vision, tmp_path: Path, missing: str
) -> None:
    broken = write_tiny_mmproj(tmp_path / "mmproj-broken.gguf", drop=(missing,))
    core = await start_api(VISION_MODEL_GGUF=str(tiny_vision[0]), VISION_MMPROJ=str(broken))
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", json={"model": VLM})
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert "SIGSEGV" in message, message
    assert f"the projector file {broken} is most likely broken" in message
    assert "download the model's mmproj file again" in message


async def test_a_projector_for_another_model_says_it_does_not_match(
    start_api, tiny_vision, tmp_path: Path
) -> None:
    narrow = write_narrow_model(tmp_path / "narrow.gguf")
    core = await start_api(VISION_MODEL_GGUF=str(narrow), VISION_MMPROJ=str(tiny_vision[1]))
    async with client(core) as c:
        r = await c.post("/api/v1/models/load", json={"model": VLM})
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert "mismatch between text model" in message and "broken" not in message, message
