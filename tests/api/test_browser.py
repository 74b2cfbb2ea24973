"""A real browser: headless Chromium opens a page served from another local port whose
script calls the API. Blocked by default (and the model is not loaded); works once the
page's origin is in API_CORS_ORIGINS, preflight included."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from tests.api.conftest import servers
from tests.conftest import free_port

LLM = "google/gemma-3-12b"


def chromium() -> str:
    found = os.environ.get("FLT_CHROMIUM") or shutil.which("chromium")
    found = found or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        pytest.skip("no chromium: `apt-get install chromium` (.ci/run installs it)")
    return found


PAGE = """<!doctype html><html><head><title>waiting</title></head><body>
<pre id="out">waiting</pre>
<script>
const show = (text) => { document.getElementById("out").textContent = text; };
fetch(%(url)s, {method: "POST", headers: {"Content-Type": %(ctype)s}, body: %(body)s})
  .then((r) => r.text().then((t) => show("answered " + r.status + " " + t)))
  .catch((e) => show("blocked " + e));
</script></body></html>"""


async def serve_page(url: str, ctype: str) -> web.AppRunner:
    """The attacker's (or the user's own) page, on another local port."""
    body = json.dumps(json.dumps({"model": LLM}))
    text = PAGE % {"url": json.dumps(url), "ctype": json.dumps(ctype), "body": body}

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=text, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


async def open_in_chromium(page_url: str, profile: Path) -> str:
    """The page's DOM once its script has run (virtual time waits for the fetch)."""
    proc = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=30000",
        "--dump-dom",
        page_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    dom = out.decode("utf-8", "replace")
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found, dom[:2000]
    return html.unescape(found.group(1))


@pytest.mark.parametrize("ctype", ["text/plain", "application/json"])
async def test_a_page_is_blocked_until_its_origin_is_listed(
    start_api, tmp_path, ctype: str
) -> None:
    chromium()
    page_port = free_port()
    page_origin = f"http://127.0.0.1:{page_port}"

    async def visit(core) -> str:
        runner = await serve_page(f"{core.api.url}/api/v1/models/load", ctype)
        try:
            await web.TCPSite(runner, "127.0.0.1", page_port).start()
            return await open_in_chromium(f"{page_origin}/", tmp_path / f"profile-{page_port}")
        finally:
            await runner.cleanup()

    core = await start_api()
    before = core.manager.statuses()
    seen = await visit(core)
    assert seen.startswith("blocked "), seen  # the browser hides the 403 from the page
    assert servers() == [] and core.manager.statuses() == before
    await core.stop()

    core = await start_api(API_CORS_ORIGINS=page_origin)
    seen = await visit(core)
    assert seen.startswith("answered 200 "), seen
    assert json.loads(seen.split(" ", 2)[2])["model_instance_id"] == LLM
    assert len(servers()) == 1
