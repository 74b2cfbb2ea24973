"""Fixtures for the log window: a real core (the loop is tests/support/qloop.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.app_core import AppCore
from app.paths import AppPaths
from app.settings_load import load_settings
from tests.support import app as support


@pytest.fixture
def paths(app_home: Path) -> AppPaths:
    return AppPaths.resolve().ensure()


@pytest.fixture
def make_core(paths: AppPaths, llama_server_bin: str):
    """``make_core(**settings)``: a core with no services, built as the app builds it."""

    def make(**overrides) -> AppCore:
        settings = load_settings(
            paths, LLAMA_SERVER_PATH=llama_server_bin, LLAMA_CTX_SIZE=512, **overrides
        )
        return support.make_core(settings, None, paths=paths)

    return make
