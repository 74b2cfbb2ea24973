"""Helpers for the FamilyLog run tests: the stand-in, settings for it, a started core."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import Settings
from app.core.app_core import AppCore
from app.core.notices import Notice
from tests.support.app import AS_APP, make_core

STANDIN = Path(__file__).resolve().parents[1] / "support" / "familylog_standin" / "run.py"


def standin_command(*args: str) -> str:
    return shlex.join([sys.executable, str(STANDIN), *args])


@pytest.fixture
def familylog_dir(tmp_path: Path) -> Path:
    d = tmp_path / "FamilyLog"
    d.mkdir()
    return d


@pytest.fixture
def make_settings(familylog_dir: Path):
    def make(*args: str, **overrides) -> Settings:
        values = {
            "FAMILYLOG_DIR": str(familylog_dir),
            "FAMILYLOG_COMMAND": standin_command(*args),
            "LLAMA_CTX_SIZE": 512,
            "LLAMA_READY_TIMEOUT": 60,
            "API_ENABLED": False,
        }
        values.update(overrides)
        return Settings(**values)

    return make


class Recorder:
    """Collects what a core tells: output batches, notices, run states."""

    def __init__(self, core: AppCore) -> None:
        self.batches: list[list[str]] = []
        self.notices: list[Notice] = []
        self.states: list[str] = []
        self.watchers: list[tuple[str, asyncio.Event]] = []
        core.runs.subscribe_output(self._lines)
        core.runs.subscribe_state(lambda st: self.states.append(str(st.state)))
        core.notices.subscribe(self.notices.append)

    def _lines(self, batch: list[str]) -> None:
        self.batches.append(batch)
        for text, ev in self.watchers:
            if any(text in line for line in batch):
                ev.set()

    @property
    def lines(self) -> list[str]:
        return [line for b in self.batches for line in b]

    def seen(self, text: str) -> asyncio.Event:
        """An event set once a line containing ``text`` has been printed."""
        ev = asyncio.Event()
        if any(text in line for line in self.lines):
            ev.set()
        self.watchers.append((text, ev))
        return ev


@contextlib.asynccontextmanager
async def started_core(settings: Settings, **runs_kw) -> AsyncIterator[AppCore]:
    core = make_core(settings, **AS_APP, run_options=runs_kw)
    await core.start()
    try:
        yield core
    finally:
        await core.stop()
