"""A stand-in for FamilyLog's ``run.py``: does to the models what the real one does.

    python run.py VARIANT [ARGS]      (or STANDIN_VARIANT=... python run.py)

Variants:
- ``lmstudio``: an LM Studio client, as unmigrated FamilyLog: against
  ``http://127.0.0.1:$API_PORT`` it loads the vision model by its key
  (``POST /api/v1/models/load``), waits until ``GET /api/v1/models`` lists it loaded,
  sends it a chat request, unloads it (``POST /api/v1/models/unload`` with
  ``instance_id`` = the key), then the same for the LLM. Keys from ``VISION_MODEL_ID`` / ``LLM_MODEL_ID``.
- ``offline [vision,llm]``: FamilyLog set up as the seed's section 3 (``CONNECTION_TYPE=offline``):
  chat requests straight to llama-server on ``LLAMA_VISION_PORT`` and ``LLAMA_LLM_PORT``,
  which the app preloaded (``RUN_PRELOAD``).
- ``manages``: FamilyLog migrated as the seed's step 7: it starts llama-server itself
  (``LLAMA_SERVER_PATH``, ``VISION_MODEL_GGUF``, ``LLM_MODEL_GGUF``, from the environment
  or its own ``.env``) with the seed's
  manager, vision on ``LLAMA_VISION_PORT`` then the LLM on ``LLAMA_LLM_PORT``, logs in
  its own ``logs/``, and shuts them down at the end.
- ``ok [N]``: prints N progress lines, exits 0. ``fail [CODE]``: prints, exits CODE (3).
- ``hang``: prints its PID and a grandchild's, then waits forever (``IGNORE_TERM=1``:
  ignores SIGTERM, so only SIGKILL stops it).
- ``flood [MB]``: prints MB megabytes (100) of lines as fast as it can, exits 0.
- ``binary``: prints bytes that are not UTF-8, a line without its newline, exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def say(*parts: object) -> None:
    print("[standin]", *parts, flush=True)


def arg(i: int, default: str) -> str:
    return sys.argv[i] if len(sys.argv) > i else default


# ── Models ────────────────────────────────────────────────────────────────────
async def chat(client, base: str, model: str, text: str) -> str:
    return (await chat_answer(client, base, model, text))["choices"][0]["message"]["content"]


async def chat_answer(client, base: str, model: str, text: str) -> dict:
    r = await client.post(
        f"{base}/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 4,
            "temperature": 0,
        },
    )
    r.raise_for_status()
    return r.json()


def client():
    import httpx

    return httpx.AsyncClient(timeout=120, trust_env=False)


async def lmstudio() -> int:
    """What FamilyLog's model_manager.py does: load by key, poll the list until loaded,
    chat, unload with ``instance_id`` set to the key (LM Studio names an instance loaded
    by key after the key)."""
    base = f"http://127.0.0.1:{os.environ.get('API_PORT', '1234')}"
    async with client() as c:
        for phase, key in (
            ("vision", os.environ["VISION_MODEL_ID"]),
            ("llm", os.environ["LLM_MODEL_ID"]),
        ):
            say(f"{phase}: loading {key} via {base}/api/v1/models/load")
            r = await c.post(f"{base}/api/v1/models/load", json={"model": key})
            r.raise_for_status()
            say(f"{phase}: load answered instance {r.json().get('instance_id')!r}")
            deadline = time.monotonic() + 120
            while key not in await loaded_instances(c, base):
                if time.monotonic() > deadline:
                    say(f"{phase}: {key} never showed as loaded in /api/v1/models")
                    return 5
                await asyncio.sleep(0.2)
            answer = await chat_answer(c, base, key, f"describe ({phase})")
            reply = answer["choices"][0]["message"]["content"]
            say(f"{phase}: reply from model {answer.get('model')!r}: {reply!r}")
            r = await c.post(f"{base}/api/v1/models/unload", json={"instance_id": key})
            r.raise_for_status()
            say(f"{phase}: unloaded {key}")
    say("done")
    return 0


async def loaded_instances(c, base: str) -> list[str]:
    """The loaded instance ids, as FamilyLog's ``get_loaded_models()`` collects them."""
    r = await c.get(f"{base}/api/v1/models")
    r.raise_for_status()
    return [i["id"] for m in r.json().get("models", []) for i in m.get("loaded_instances", [])]


async def offline(phases: list[str]) -> int:
    if os.environ.get("CONNECTION_TYPE") != "offline":
        say(f"CONNECTION_TYPE is {os.environ.get('CONNECTION_TYPE')!r}, not 'offline'")
        return 4
    async with client() as c:
        for phase in phases:
            port = os.environ[f"LLAMA_{phase.upper()}_PORT"]
            reply = await chat(c, f"http://127.0.0.1:{port}", "ignored", f"hello ({phase})")
            say(f"{phase}: llama-server on port {port} replied {reply!r}")
    say("done")
    return 0


async def manages() -> int:
    sys.path.insert(0, str(ROOT))
    from dotenv import load_dotenv

    from app.core.servers.manager import LlamaServerManager

    load_dotenv(Path.cwd() / ".env", override=False)  # its own .env, as FamilyLog's config

    manager = LlamaServerManager(os.environ["LLAMA_SERVER_PATH"], log_dir=Path.cwd() / "logs")
    ctx = int(os.environ.get("LLAMA_CTX_SIZE", "512"))
    try:
        async with client() as c:
            for phase, model, var in (
                ("vision", "VISION_MODEL_GGUF", "LLAMA_VISION_PORT"),
                ("llm", "LLM_MODEL_GGUF", "LLAMA_LLM_PORT"),
            ):
                port = int(os.environ[var])
                await manager.load_model(os.environ[model], port=port, ctx_size=ctx)
                say(f"{phase}: started llama-server on port {port} (logs/llama-server-{port}.log)")
                reply = await chat(c, f"http://127.0.0.1:{port}", "ignored", f"hi ({phase})")
                say(f"{phase}: replied {reply!r}")
                await manager.unload_model(port)
                say(f"{phase}: stopped")
    finally:
        await manager.shutdown()
    say("done")
    return 0


# ── Output and exits ─────────────────────────────────────────────────────────
def ok(n: int) -> int:
    for i in range(n):
        say(f"step {i + 1}/{n}")
    print("warning on stderr", file=sys.stderr, flush=True)
    say("done")
    return 0


def fail(code: int) -> int:
    say("collecting messages")
    print("Traceback (most recent call last):", file=sys.stderr)
    print("RuntimeError: the stand-in failed on purpose", file=sys.stderr, flush=True)
    return code


def hang() -> int:
    if os.environ.get("IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    say(f"pid {os.getpid()} grandchild {child.pid}")
    say("hanging")
    while True:
        time.sleep(3600)


def flood(mb: float) -> int:
    line = b"flood " + b"x" * 93 + b"\n"  # 100 bytes
    block = line * 10_000  # 1 MB
    out = sys.stdout.buffer
    for _ in range(int(mb)):
        out.write(block)
    out.write(b"flood done\n")
    out.flush()
    return 0


def binary() -> int:
    out = sys.stdout.buffer
    out.write(b"latin-1 caf\xe9\n")
    out.write(b"broken \xff\xfe utf-8\n")
    out.write("utf-8 привет\n".encode())
    out.write(b"progress 10%\rprogress 50%\rprogress 100%\n")
    out.write(b"no newline at the end")
    out.flush()
    return 0


def main() -> int:
    variant = arg(1, os.environ.get("STANDIN_VARIANT", "ok"))
    if variant == "lmstudio":
        return asyncio.run(lmstudio())
    if variant == "offline":
        return asyncio.run(offline(arg(2, "vision,llm").split(",")))
    if variant == "manages":
        return asyncio.run(manages())
    if variant == "ok":
        return ok(int(arg(2, "3")))
    if variant == "fail":
        return fail(int(arg(2, "3")))
    if variant == "hang":
        return hang()
    if variant == "flood":
        return flood(float(arg(2, "100")))
    if variant == "binary":
        return binary()
    say(f"unknown variant {variant!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
