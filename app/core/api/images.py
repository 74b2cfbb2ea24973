"""Images in API requests, found in every shape a route takes them and checked before
llama-server sees them.

Shapes: OpenAI chat ``{"type": "image_url", "image_url": {"url": …}}``, OpenAI Responses
``{"type": "input_image", "image_url": …}``, Anthropic ``{"type": "image", "source": …}``
and LM Studio's ``/api/v1/chat`` ``{"type": "image", "data_url": …}``, wherever they sit in
the body.

- A URL (``http(s)://``, ``file://``) is refused unless ``API_ALLOW_IMAGE_URLS``:
  llama-server would fetch it, so any client could make this computer probe its network.
- An inline image must be in a format llama-server reads (JPEG, PNG, GIF, BMP); others
  (HEIC as phones save photos, WebP, AVIF, TIFF, …) get a 400 that names the format.
- A JPEG with an EXIF rotation is turned upright (llama-server ignores the tag, so a phone
  photo would reach the model on its side), off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

from app.core.api.common import ApiError

# What llama-server's image reader (stb_image) reads.
READABLE = frozenset({"JPEG", "PNG", "GIF", "BMP", "PSD", "HDR", "PNM"})
SEND_INSTEAD = "Send it as JPEG or PNG instead (most photo apps can export or share as JPEG)."
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_ORIENTATION = 0x0112
_HEAD = 64  # base64 characters decoded to tell the format: 48 bytes
_EXIF_HEAD = 87_384  # base64 characters of a JPEG's first 64 KiB, where its EXIF block is


@dataclass
class ImageRef:
    """One image in a request body: where it is and how to replace it."""

    where: str  # e.g. "messages[0].content[1]"
    holder: dict[str, Any]  # the object whose ``field`` holds it
    field: str
    inline: str  # how this shape sends an image inline, for the messages
    base64_only: bool = False  # Anthropic's base64 source: the data without "data:…,"

    @property
    def value(self) -> str:
        return self.holder[self.field]


def find_images(body: Any) -> list[ImageRef]:
    """Every image reference in ``body``, in the order they appear."""
    out: list[ImageRef] = []
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(value))))
            continue
        if not isinstance(value, dict):
            continue
        ref = _image_in(value, where or "the body")
        if ref is not None:
            out.append(ref)
            continue
        stack.extend(
            (v, f"{where}.{k}" if where else str(k)) for k, v in reversed(list(value.items()))
        )
    return out


def _image_in(d: dict[str, Any], where: str) -> ImageRef | None:
    kind = d.get("type")
    if kind == "image_url":
        inner = d.get("image_url")
        hint = '"image_url": {"url": "data:image/jpeg;base64,…"}'
        if isinstance(inner, dict) and isinstance(inner.get("url"), str):
            return ImageRef(where, inner, "url", hint)
        if isinstance(inner, str):
            return ImageRef(where, d, "image_url", hint)
    elif kind == "input_image" and isinstance(d.get("image_url"), str):
        return ImageRef(where, d, "image_url", '"image_url": "data:image/jpeg;base64,…"')
    elif kind == "image":
        src = d.get("source")
        hint = '"source": {"type": "base64", "media_type": "image/jpeg", "data": "…"}'
        if (
            isinstance(src, dict)
            and src.get("type") == "base64"
            and isinstance(src.get("data"), str)
        ):
            return ImageRef(where, src, "data", hint, base64_only=True)
        if isinstance(src, dict) and src.get("type") == "url" and isinstance(src.get("url"), str):
            return ImageRef(where, src, "url", hint)
        if isinstance(d.get("data_url"), str):
            return ImageRef(where, d, "data_url", '"data_url": "data:image/jpeg;base64,…"')
    return None


def image_format(head: bytes) -> str:
    """The format of an image from its first bytes, in words; "" when unknown."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith(b"8BPS"):
        return "PSD"
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "HDR"
    if len(head) > 2 and head[:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return "PNM"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        size = int.from_bytes(head[:4], "big")
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(size, len(head)), 4)}
        if brands & {b"avif", b"avis"}:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIC"
        return "a video (MP4/MOV)"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF (or a camera RAW file)"
    if head.startswith((b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51")):
        return "JPEG 2000"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")):
        return "JPEG XL"
    if head.startswith(b"%PDF"):
        return "PDF"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return "SVG"
    return ""


_WORDS = {
    "HEIC": "HEIC (HEIF), the format iPhones and many Android phones save photos in",
    "WebP": "WebP",
    "AVIF": "AVIF",
}


def _refuse(ref: ImageRef, message: str, code: str) -> ApiError:
    return ApiError(400, f"{ref.where}: {message}", code=code, param=ref.where)


def _split_data_url(ref: ImageRef) -> tuple[str, str]:
    """(the header before the comma, the base64 data) of an inline image."""
    if ref.base64_only:
        return "", ref.value
    header, comma, data = ref.value.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise _refuse(
            ref,
            "an inline image must be a base64 data: URL, like data:image/jpeg;base64,…",
            "bad_image",
        )
    return header, data


def _decode(ref: ImageRef, data: str, chars: int | None = None) -> bytes:
    text = data
    if chars is not None:  # the first ``chars`` characters, line breaks left out
        text = "".join(data[: chars * 2].split())[:chars]
        text = text[: len(text) // 4 * 4]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        raise _refuse(ref, "the image's base64 data cannot be decoded", "bad_image") from None


def upright_jpeg(data: bytes) -> bytes | None:
    """The JPEG turned as its EXIF orientation says, re-encoded; None when it has no
    rotation (or cannot be read: llama-server will say so)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.getexif().get(_ORIENTATION, 1) in (None, 1):
                return None
            icc = img.info.get("icc_profile")
            upright = ImageOps.exif_transpose(img)
            out = io.BytesIO()
            upright.save(out, "JPEG", quality=95, icc_profile=icc, exif=upright.getexif())
            return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _check_url(ref: ImageRef, allow_urls: bool) -> bool:
    """True when the reference is an inline image to check further; a refused URL raises."""
    value = ref.value
    if ref.base64_only or value[:5].lower() == "data:":
        return True
    if allow_urls:
        return False
    shown = value if len(value) <= 80 else value[:77] + "…"
    raise _refuse(
        ref,
        f"image URLs are not fetched ({shown}). Send the image inline instead, as "
        f"{ref.inline}. (The app's owner can set API_ALLOW_IMAGE_URLS=true to let "
        "llama-server download image URLs.)",
        "image_url_not_allowed",
    )


async def check_images(body: Any, *, allow_urls: bool) -> bool:
    """Check every image in ``body`` (a 400 ``ApiError`` for one that cannot go on) and turn
    EXIF-rotated JPEGs upright in place; True when ``body`` was changed."""
    changed = False
    for ref in find_images(body):
        if not _check_url(ref, allow_urls):
            continue
        header, data = _split_data_url(ref)
        fmt = image_format(_decode(ref, data, _HEAD))
        if not fmt:
            raise _refuse(
                ref,
                "this is not an image llama-server can read (not JPEG, PNG, GIF or BMP). "
                + SEND_INSTEAD,
                "unsupported_image_format",
            )
        if fmt not in READABLE:
            raise _refuse(
                ref,
                f"the image is {_WORDS.get(fmt, fmt)}, which llama-server cannot read. "
                + SEND_INSTEAD,
                "unsupported_image_format",
            )
        if fmt != "JPEG":
            continue
        if b"Exif" not in _decode(ref, data, _EXIF_HEAD):  # EXIF sits at the start, if anywhere
            continue
        turned = await asyncio.to_thread(upright_jpeg, _decode(ref, data))
        if turned is not None:
            encoded = base64.b64encode(turned).decode("ascii")
            ref.holder[ref.field] = encoded if ref.base64_only else f"{header},{encoded}"
            changed = True
    return changed
