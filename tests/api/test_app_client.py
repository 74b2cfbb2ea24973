"""The one client of the app's own API (``app.core.api.client``) against a real HTTP server
on loopback: what the command line's ``call`` and the check's ``AppApi`` get back, the key
they send, and the one error for "nothing answers"."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.config import Settings
from app.core.api.client import (
    ApiAnswerError,
    AppApi,
    AppNotRunningError,
    app_url,
    call,
    error_message,
)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, sent: object) -> None:
        if self.path == "/echo":
            seen = {
                "method": self.command,
                "auth": self.headers.get("Authorization"),
                "body": sent,
            }
            self._answer(200, json.dumps(seen).encode())
        elif self.path == "/missing":
            error = {"error": {"message": "no model called x", "code": "model_not_found"}}
            self._answer(404, json.dumps(error).encode())
        elif self.path == "/broken":
            self._answer(500, b"oops", "text/plain")
        else:
            self._answer(404, b"{}")

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._route(None)

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        self._route(json.loads(self.rfile.read(n)))


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(port: int, key: str = "") -> Settings:
    return Settings(API_HOST="127.0.0.1", API_PORT=port, API_KEY=key)


def test_the_command_line_gets_status_and_answer_with_the_key(server, monkeypatch) -> None:
    # loopback never goes through a proxy, whatever the environment says
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_free_port()}")
    s = _settings(server, key="sekrit")
    assert app_url(s) == f"http://127.0.0.1:{server}"
    assert call(s, "/echo") == (200, {"method": "GET", "auth": "Bearer sekrit", "body": None})
    status, answer = call(s, "/echo", {"model": "m"})
    assert status == 200 and answer["method"] == "POST" and answer["body"] == {"model": "m"}


def test_the_command_line_gets_error_answers_as_they_are(server) -> None:
    s = _settings(server)
    status, answer = call(s, "/missing", {"model": "x"})
    assert status == 404 and error_message(answer) == "no model called x"
    assert call(s, "/broken") == (500, {})  # not JSON: an empty answer, the status tells
    assert call(s, "/echo")[1]["auth"] is None  # no key set: no Authorization header


def test_base_overrides_the_settings_address(server) -> None:
    s = _settings(_free_port())
    assert call(s, "/echo", base=f"http://127.0.0.1:{server}")[0] == 200


def test_nothing_answering_is_one_error() -> None:
    s = _settings(_free_port())
    with pytest.raises(AppNotRunningError, match="nothing answers at"):
        call(s, "/api/v0/ps")


async def test_app_api_raises_the_apps_own_words(server) -> None:
    async with AppApi.of(_settings(server, key="k")) as api:
        assert (await api.call("/echo", {"a": 1}))["auth"] == "Bearer k"
        with pytest.raises(ApiAnswerError) as missing:
            await api.call("/missing")
        assert missing.value.status == 404 and missing.value.code == "model_not_found"
        assert missing.value.message == "no model called x"
        with pytest.raises(ApiAnswerError, match="HTTP 500: oops"):
            await api.call("/broken")
    async with AppApi(f"http://127.0.0.1:{_free_port()}") as api:
        with pytest.raises(AppNotRunningError):
            await api.ps()
