"""The image check on its own: images found in every shape and nesting, formats told from
real files Pillow writes, and what a refusal says."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from app.core.api.common import ApiError
from app.core.api.images import check_images, find_images, image_format, upright_jpeg
from tests.support import images


def _fmt(data: bytes) -> str:
    return image_format(data[:48])


@pytest.mark.parametrize(
    ("pillow", "expected"),
    [
        ("PNG", "PNG"),
        ("JPEG", "JPEG"),
        ("GIF", "GIF"),
        ("BMP", "BMP"),
        ("PPM", "PNM"),
        ("WEBP", "WebP"),
        ("TIFF", "TIFF (or a camera RAW file)"),
        ("JPEG2000", "JPEG 2000"),
        ("PDF", "PDF"),
    ],
)
def test_formats_are_told_from_the_first_bytes(pillow: str, expected: str) -> None:
    assert _fmt(images.encode(images.picture(), pillow)) == expected


def test_heic_avif_and_unknown_bytes() -> None:
    assert _fmt(images.heic()) == "HEIC"
    avif = images.encode(images.picture(), "AVIF") if "AVIF" in Image.SAVE else None
    if avif is not None:
        assert _fmt(avif) == "AVIF"
    assert _fmt(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf") == "AVIF"
    assert _fmt(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2") == "a video (MP4/MOV)"
    assert _fmt(b"hello world") == ""


def test_images_are_found_in_every_shape_and_nesting() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:a"}}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": "data:b"}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "data": "c"}},
                            {"type": "image", "source": {"type": "url", "url": "http://d"}},
                        ],
                    }
                ],
            },
        ],
        "input": [
            {"type": "image", "data_url": "data:e"},
            {"role": "user", "content": [{"type": "input_image", "image_url": "data:f"}]},
            {"type": "text", "text": "image_url"},  # not an image
        ],
    }
    found = [(r.where, r.value) for r in find_images(body)]
    assert found == [
        ("messages[0].content[0]", "data:a"),
        ("messages[1].content[0]", "data:b"),
        ("messages[2].content[0].content[0]", "c"),
        ("messages[2].content[0].content[1]", "http://d"),
        ("input[0]", "data:e"),
        ("input[1].content[0]", "data:f"),
    ]


def _chat(url: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        ]
    }


async def test_base64_with_line_breaks_and_a_data_url_without_base64() -> None:
    wrapped = base64.encodebytes(images.png()).decode()  # 76 characters a line
    assert "\n" in wrapped[:80]
    assert await check_images(_chat("data:image/png;base64," + wrapped), allow_urls=False) is False
    with pytest.raises(ApiError) as e:
        await check_images(_chat("data:image/png,rawbytes"), allow_urls=False)
    assert e.value.status == 400 and "base64 data: URL" in e.value.message


async def test_urls_pass_only_when_allowed_and_data_urls_always() -> None:
    for url in ("http://10.0.0.1/a.png", "HTTPS://x/y.jpg", "file:///etc/passwd", "ftp://x/y"):
        with pytest.raises(ApiError) as e:
            await check_images(_chat(url), allow_urls=False)
        assert (
            e.value.code == "image_url_not_allowed" and "data:image/jpeg;base64" in e.value.message
        )
        assert await check_images(_chat(url), allow_urls=True) is False


async def test_a_rotated_jpeg_is_turned_upright_in_the_body() -> None:
    body = _chat(images.data_url(images.jpeg(orientation=6), "image/jpeg"))
    assert await check_images(body, allow_urls=False) is True
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        assert img.size == (32, 64)  # was 64 wide, 32 high: turned a quarter
        assert img.getexif().get(images.ORIENTATION) is None  # and says so no more
    plain = _chat(images.data_url(images.jpeg(), "image/jpeg"))
    assert await check_images(plain, allow_urls=False) is False  # no rotation: untouched
    assert upright_jpeg(b"\xff\xd8\xff broken") is None
