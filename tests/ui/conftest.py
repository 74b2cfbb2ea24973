"""Fixtures for the Qt tests: a real TrayApp (the loop is tests/support/qloop.py's)."""

from __future__ import annotations

from typing import TypeVar

import pytest

from app.core.settings.settings_file import update_settings_file
from app.paths import AppPaths
from app.settings_load import load_settings
from tests.conftest import free_port
from tests.support.app import AS_APP, make_core

T = TypeVar("T")


@pytest.fixture
def make_app(arun, llama_server_bin, port, port2):
    """Build a started TrayApp over a real core; stopped (all servers) at teardown."""
    from app.ui.tray_app import TrayApp

    made = []

    def make(clock=None, gpu=None, **overrides):
        """A started TrayApp with these settings (``clock``: the core's, e.g. a ManualClock;
        ``gpu``: a stand-in GPU whose free memory the test chooses)."""
        paths = AppPaths.resolve().ensure()
        values = {
            "LLAMA_SERVER_PATH": llama_server_bin,
            "LLAMA_LLM_PORT": port,
            "LLAMA_VISION_PORT": port2,
            "LLAMA_PORT": free_port(),
            "LLAMA_CTX_SIZE": 512,
            "API_ENABLED": False,
        }
        values.update(overrides)
        # through the settings file, as a user would, so reloading it gives the same
        update_settings_file(paths.settings_file, {k: str(v) for k, v in values.items()})
        settings = load_settings(paths)
        core = make_core(settings, **AS_APP, paths=paths, clock=clock, gpu=gpu)
        app = TrayApp(core, paths)
        arun(app.start(show_tray=False, load_at_start=False))
        made.append(app)
        return app

    yield make
    for app in made:
        arun(app.shutdown())
