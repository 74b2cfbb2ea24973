"""Test images made with Pillow: PNG, JPEG with an EXIF rotation, and the first bytes of the
formats llama-server cannot read (HEIC as iPhones save photos)."""

from __future__ import annotations

import base64
import io

from PIL import Image

ORIENTATION = 0x0112  # the EXIF tag; 6 = "turn 90° clockwise to show"


def picture(width: int = 64, height: int = 32) -> Image.Image:
    """A picture whose turn the model can tell: light on the left, dark on the right, a grey
    block at the top left. Grey shades on 16-pixel blocks: JPEG keeps them almost exactly, so
    a JPEG and a PNG of it reach the model nearly alike."""
    img = Image.new("RGB", (width, height), (240, 240, 240))
    img.paste((20, 20, 20), (width // 2, 0, width, height))
    img.paste((128, 128, 128), (0, 0, 16, 16))
    return img


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png(img: Image.Image | None = None) -> bytes:
    return encode(img or picture(), "PNG")


def jpeg(img: Image.Image | None = None, orientation: int | None = None) -> bytes:
    """A JPEG; with ``orientation``, the EXIF tag that says how to turn it for display."""
    kw: dict = {"quality": 95}
    if orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        kw["exif"] = exif
    return encode(img or picture(), "JPEG", **kw)


def heic() -> bytes:
    """The start of an HEIC file (an ISO-BMFF ``ftyp`` box, brand ``heic``), as phones save."""
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heicmiaf"
    return len(ftyp + b"1234").to_bytes(4, "big") + ftyp + b"\x00" * 200


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
