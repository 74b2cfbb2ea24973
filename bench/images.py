"""Images through the API: what stored chats cost in memory, and what turning a phone photo
upright costs in time.

    uv run python bench/images.py [--chats 10] [--image-mb 13] [--budget-mb 64]
    # -> bench/results/images.json

(a) Two ``familylog-tray --headless`` apps (separate processes, as in real use) serve the tiny
    vision pair: one with ``API_CHAT_STORE_MB`` at ``--budget-mb``, one with a budget no
    chat reaches (the app before the budget: every chat kept). Each gets ``--chats`` new
    ``/api/v1/chat`` conversations with a ``--image-mb`` PNG, alternating; the script prints
    each app's resident memory (without its llama-server) after every chat.
(b) The EXIF check in process, interleaved: a 12-megapixel phone JPEG with an EXIF rotation
    (decoded, turned, encoded again) against the same JPEG without one (its header read
    only), median of 5 each.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from common import ROOT, free_port, llama_server_bin
from results import save

sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from app.core.api.images import check_images  # noqa: E402
from tests.support.app import start_headless  # noqa: E402
from tests.support.tiny_vision import write_tiny_vision_pair  # noqa: E402

# The code this benchmark measures: the chat store (its budget) and the images' check (the
# EXIF turn). Its figures (bench/results/images.json) go stale when one of these changes.
MEASURES = ["app/core/api/chat_v1.py", "app/core/api/responses.py", "app/core/api/images.py"]

MIB = 1024 * 1024


def noise_png(mb: float) -> bytes:
    side = int((mb * MIB / 3) ** 0.5)
    return _encode(Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)), "PNG")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / MIB


def chat_memory(args: argparse.Namespace, home: Path) -> dict:
    model, mmproj = write_tiny_vision_pair(home / "models")
    url = "data:image/png;base64," + base64.b64encode(noise_png(args.image_mb)).decode()
    apps = {}
    for name, budget in (("budget", args.budget_mb), ("no budget", 100_000)):
        port = free_port()
        env = {
            "FAMILYLOG_TRAY_HOME": str(home / name),
            "LLAMA_SERVER_PATH": llama_server_bin(),
            "VISION_MODEL_GGUF": str(model),
            "VISION_MMPROJ": str(mmproj),
            "VISION_MODEL_ID": "tiny-vision",
            "LLAMA_VISION_PORT": str(free_port()),
            "LLAMA_CTX_SIZE": "512",
            "RUN_MODE": "parallel",
            "API_PORT": str(port),
            "API_CHAT_STORE_MB": str(budget),
            "QT_QPA_PLATFORM": "offscreen",
        }
        apps[name] = (start_headless(env), f"http://127.0.0.1:{port}")
    body = {
        "model": "tiny-vision",
        "input": [
            {"type": "message", "content": "What is this?"},
            {"type": "image", "data_url": url},
        ],
        "max_output_tokens": 1,
    }
    print(
        f"(a) {args.chats} chats with a {len(url) / MIB:.1f} MiB image (base64) each; "
        f"app RSS in MiB, API_CHAT_STORE_MB={args.budget_mb:g} vs no budget"
    )
    try:
        with httpx.Client(timeout=120, trust_env=False) as c:
            start = {n: rss_mib(p.pid) for n, (p, _) in apps.items()}
            rss = {n: [round(v)] for n, v in start.items()}
            print(f"  before: {start['budget']:.0f} vs {start['no budget']:.0f}")
            for i in range(1, args.chats + 1):
                for _, base in apps.values():
                    r = c.post(base + "/api/v1/chat", json=body)
                    assert r.status_code == 200, r.text
                now = {n: rss_mib(p.pid) for n, (p, _) in apps.items()}
                for n, v in now.items():
                    rss[n].append(round(v))
                print(f"  after chat {i:2d}: {now['budget']:.0f} vs {now['no budget']:.0f}")
            grow = {n: rss_mib(p.pid) - start[n] for n, (p, _) in apps.items()}
            print(
                f"  grew by {grow['budget']:.0f} MiB with the budget, "
                f"{grow['no budget']:.0f} MiB without ({grow['no budget'] / max(grow['budget'], 1):.1f}x)"
            )
    finally:
        for p, _ in apps.values():
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
    return {
        "chats": args.chats,
        "image_base64_mib": round(len(url) / MIB, 1),
        "budget_mb": args.budget_mb,
        "rss_mib_after_each_chat": {"budget": rss["budget"], "no_budget": rss["no budget"]},
        "grew_mib": {"budget": round(grow["budget"]), "no_budget": round(grow["no budget"])},
    }


def exif_cost() -> dict:
    # smooth like a photo (noise would not compress): random colours, scaled up
    small = Image.frombytes("RGB", (160, 120), os.urandom(160 * 120 * 3))
    photo = small.resize((4000, 3000), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _encode(photo, "JPEG", quality=90, exif=exif)
    plain = _encode(photo, "JPEG", quality=90)

    def body(data: bytes) -> dict:
        url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
        return {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ]
        }

    times: dict[str, list[float]] = {"rotated": [], "plain": []}
    for _ in range(5):
        for name, data in (("rotated", rotated), ("plain", plain)):
            b = body(data)
            t0 = time.perf_counter()
            asyncio.run(check_images(b, allow_urls=False))
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(
        f"(b) a 12 MP phone JPEG ({len(rotated) / MIB:.1f} MiB): turned upright in "
        f"{med['rotated']:.0f} ms; without an EXIF rotation checked in {med['plain']:.1f} ms"
    )
    return {
        "jpeg_mib": round(len(rotated) / MIB, 1),
        "rounds": 5,
        "rotated_ms": round(med["rotated"], 1),
        "plain_ms": round(med["plain"], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--chats", type=int, default=10)
    p.add_argument("--image-mb", type=float, default=13.0)
    p.add_argument("--budget-mb", type=float, default=64.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="flt-bench-images-") as tmp:
        memory = chat_memory(args, Path(tmp))
    save("images", {"stored_chats": memory, "exif": exif_cost()}, measures=MEASURES)


if __name__ == "__main__":
    main()
