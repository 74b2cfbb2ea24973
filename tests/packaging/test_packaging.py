"""The packaging inputs are valid: desktop file, Info.plist fragment, version resource, icons.

Building the bundle takes a minute; CI does it (packaging/build.py + packaging/smoke_test.py).
Set FLT_BUNDLE=dist/familylog-tray to smoke-test an existing bundle from pytest as well."""

from __future__ import annotations

import configparser
import importlib.util
import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

from app import __version__
from tests.support import hub as hub_support

hub = hub_support.hub  # the fixtures
hub_files = hub_support.hub_files

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "packaging"


def load(name: str):
    """A script from packaging/ as a module (it is not a package; no sys.path games)."""
    spec = importlib.util.spec_from_file_location(f"packaging_{name}", PKG / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_linux_desktop_file() -> None:
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(PKG / "linux" / "familylog-tray.desktop")
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"] == "familylog-tray"
    assert entry["Icon"] == "familylog-tray" and entry["Categories"].endswith(";")


def test_macos_info_plist_fragment_is_tray_only() -> None:
    info = plistlib.loads((PKG / "macos" / "Info.plist.fragment").read_bytes())
    assert info["LSUIElement"] is True
    assert info["CFBundleIdentifier"] == "com.familylog.tray"


def test_windows_version_resource(tmp_path, monkeypatch) -> None:
    build = load("build")
    monkeypatch.setattr(build, "GEN", tmp_path)
    text = build.write_version_resource().read_text()
    major, minor, patch = (int(x) for x in __version__.split(".")[:3])
    assert f"filevers=({major}, {minor}, {patch}, 0)" in text
    assert f"StringStruct('ProductVersion', '{__version__}')" in text
    compile(text, "version_info.txt", "eval")  # PyInstaller evaluates it as an expression


def test_icons_render_in_every_freedesktop_size(tmp_path, qapp) -> None:
    from PySide6.QtGui import QImage

    icons = load("icons")
    files = icons.render_icons(tmp_path)
    for size in icons.SIZES:
        img = QImage(str(files[f"png{size}"]))
        assert (img.width(), img.height()) == (size, size)
        assert img.pixelColor(size // 2, size // 2).alpha() == 255, "the icon is drawn"
    assert files["ico"].read_bytes()[:4] == b"\x00\x00\x01\x00"


@pytest.mark.skipif(not os.environ.get("FLT_BUNDLE"), reason="set FLT_BUNDLE to a built bundle")
def test_bundle_smoke(llama_server_bin) -> None:
    r = subprocess.run(
        [sys.executable, str(PKG / "smoke_test.py"), os.environ["FLT_BUNDLE"],
         "--llama-server", llama_server_bin],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "smoke test passed" in r.stdout


@pytest.mark.skipif(not os.environ.get("FLT_BUNDLE"), reason="set FLT_BUNDLE to a built bundle")
def test_bundle_downloads_a_model(llama_server_bin, tiny_model, tmp_path, hub, hub_files) -> None:
    """huggingface_hub is in the bundle: its --headless app gets a model from the stand-in
    hub when its --download asks."""
    from tests.conftest import free_port
    from tests.support.hub import LLM_REPO, serve_pair

    serve_pair(hub, hub_files)
    exe = str(Path(os.environ["FLT_BUNDLE"]) / "familylog-tray")
    env = {
        **os.environ,
        "LLAMA_SERVER_PATH": llama_server_bin,
        "LLM_MODEL_GGUF": str(tiny_model),
        "API_PORT": str(free_port()),
        "MODEL_DIRS": str(tmp_path / "models"),
    }
    app = subprocess.Popen([exe, "--headless"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "running headless" in app.stdout.readline()
        r = subprocess.run(
            [exe, "--download", LLM_REPO, "--quant", "Q8_0"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert 'listed as "qwen/qwen3-8b"' in r.stdout
    finally:
        app.terminate()
        assert app.wait(30) == 0
