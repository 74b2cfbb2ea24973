"""The address a client on this machine reaches a server at (the command line's calls, a
run's FAMILYLOG_TRAY_API_URL, the answer to ``--load``)."""

from __future__ import annotations

import pytest

from app.core.servers.address import client_url


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:1234"),
        ("0.0.0.0", "http://127.0.0.1:1234"),  # every address: asked over loopback
        ("::", "http://127.0.0.1:1234"),
        ("", "http://127.0.0.1:1234"),
        ("::1", "http://[::1]:1234"),
        ("192.168.1.5", "http://192.168.1.5:1234"),
    ],
)
def test_client_url(host: str, url: str) -> None:
    assert client_url(host, 1234) == url
