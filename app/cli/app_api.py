"""The command line's client of a running app's API (``API_HOST:API_PORT``, with
``API_KEY`` when one is set): ``--ps``, ``--benchmark``, and ``--load`` / ``--unload`` when
no tray answers (a ``--headless`` app)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from app.config import Settings
from app.core.servers.address import client_url


class NotRunning(Exception):
    """Nothing answers at the API's address."""


def app_url(s: Settings) -> str:
    """``http://host:port`` of the app's API as a client on this machine reaches it."""
    return client_url(s.API_HOST, s.API_PORT)


def call(
    s: Settings,
    path: str,
    body: dict | None = None,
    timeout: float = 5.0,
    *,
    base: str | None = None,
) -> tuple[int, dict]:
    """GET (or POST ``body``) ``path`` on the app's API: (status, JSON answer). ``base``:
    the address the running app published (default: the settings' ``API_HOST:API_PORT``)."""
    url = (base or app_url(s)) + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    key = s.API_KEY.get_secret_value()
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {}
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise NotRunning(f"nothing answers at {url}: {getattr(e, 'reason', e)}") from None


def error_message(answer: dict) -> str:
    """The message of an API error answer (``{"error": {"message": ...}}``)."""
    err = answer.get("error")
    return err.get("message", "") if isinstance(err, dict) else str(answer)[:300]
