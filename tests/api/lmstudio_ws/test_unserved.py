"""The README's promise for LM Studio's SDK namespaces the app does not serve (``/files``,
``/repository``, ``/plugins``, ``/diagnostics``, ``/runtime``, ``/retrieval``): every call
answers the SDK's own error shape, saying what is not served and what to use instead, and
the connection lives on. Spoken over a raw websocket, as the SDK speaks it, for each path.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.api.conftest import base_url

# Each namespace, one endpoint a client calls there, and words of the remedy the README
# names (written here from the README, not read from the app's table).
UNSERVED = {
    "/files": ("getLocalFileAbsolutePath", "image_url"),
    "/repository": ("searchModels", "--download"),
    "/plugins": ("startToolUseSession", "rawTools"),
    "/diagnostics": ("getLogs", "--logs"),
    "/runtime": ("listEngines", "LLAMA_SERVER_PATH"),
    "/retrieval": ("retrieve", "embed"),
}


@pytest.mark.parametrize("path", list(UNSERVED))
async def test_an_unserved_namespace_answers_what_to_use_instead(start_api, path: str) -> None:
    core = await start_api()
    endpoint, remedy = UNSERVED[path]
    url = base_url(core).replace("http://", "ws://") + path
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await ws.send_json({"authVersion": 1, "clientIdentifier": "a", "clientPasskey": "b"})
        assert (await ws.receive_json(timeout=10))["success"] is True
        for call_id in (1, 2):  # a second call gets its answer too: the connection lives on
            call = {"type": "rpcCall", "endpoint": endpoint, "callId": call_id, "parameter": {}}
            await ws.send_json(call)
            answer = await ws.receive_json(timeout=10)
            assert answer["type"] == "rpcError" and answer["callId"] == call_id, answer
            error = answer["error"]
            assert error["title"].startswith("FamilyLog Tray does not serve"), error
            assert f"'{path.strip('/')}'" in error["title"] and endpoint in error["title"]
            assert remedy in error["suggestion"], error
    assert core.lifecycle.loaded() == []
