"""Switch mode against the real server: while one role serves, the other is read ahead."""

from __future__ import annotations

from pathlib import Path

from tests.support.wait import until


async def test_switch_mode_reads_the_other_role_ahead(start_api) -> None:
    core = await start_api(RUN_MODE="switch")
    await core.lifecycle.ensure(core.catalogue.role("llm"))
    vision = core.catalogue.role("vision")
    await until(lambda: core.prefetch.last is not None)
    assert core.prefetch.last[:2] == (vision.key, Path(vision.path).stat().st_size)


async def test_no_read_ahead_outside_switch_mode(start_api) -> None:
    core = await start_api(RUN_MODE="parallel")
    await core.lifecycle.ensure(core.catalogue.role("llm"))
    await core.lifecycle.ensure(core.catalogue.role("vision"))
    assert core.prefetch.last is None
