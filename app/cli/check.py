"""``familylog-tray --check [KEY|all] [--json]``: check my models through the running app's API
(``app.core.check``). Without a key: FamilyLog's two models and their switch, as the seed's
step 9 lists it (every model when neither role is set); ``all``: every model, then the pair;
a key: that model alone.

It never starts the app: with none running it says so (exit 3). It prints what runs, then
the table (``--json``: the report as JSON instead); exit 0 when every check passed, 1 when
one failed or a FamilyLog run holds a model. Ctrl-C stops it, and what it loaded is
unloaded.
"""

from __future__ import annotations

import asyncio
import json
import sys

from app.config import Settings
from app.core.api.client import ApiAnswerError, AppApi, AppNotRunningError, app_url
from app.core.bench.prompts import sample_image
from app.core.check.plan import choose, familylog_roles
from app.core.check.report import Report, table_text
from app.core.check.runner import ModelCheck
from app.exit_codes import ExitCode
from app.paths import AppPaths


async def check_models(
    settings: Settings, paths: AppPaths, which: str | None, quiet: bool
) -> Report:
    """The checks against the app's API (``AppNotRunningError`` when nothing answers)."""

    def progress(what: str) -> None:
        if not quiet:
            print(f"… {what}", flush=True)

    async with AppApi.of(settings) as api:
        keys, pair = choose(await api.models(), which, familylog_roles(settings))
        check = ModelCheck(
            api,
            image=sample_image().read_bytes(),
            server_log=paths.server_log,
            progress=progress,
        )
        return await check.run(keys, pair)


def check_command(
    settings: Settings, paths: AppPaths, which: str | None, as_json: bool
) -> ExitCode:
    try:
        report = asyncio.run(check_models(settings, paths, which or None, quiet=as_json))
    except AppNotRunningError:
        print(
            f"familylog-tray is not answering on {app_url(settings)}: start the app first (the "
            "check uses its API), then try again.",
            file=sys.stderr,
        )
        return ExitCode.NOT_RUNNING
    except ApiAnswerError as e:
        print(f"familylog-tray: the app refused the check: {e.message}", file=sys.stderr)
        return ExitCode.FAILED
    if as_json:
        print(json.dumps(report.json(), indent=2))
    else:
        if not report.refused:
            print()
        print(table_text(report))
    return ExitCode.OK if report.ok else ExitCode.FAILED
