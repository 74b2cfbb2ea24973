"""Runs the app's death interrupted: at the next start each run still recorded as running
is found, what is left of its processes is stopped (by its process group and the mark in
their environment, as recorded when it started), and it is recorded as interrupted by an
app crash, with its log."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import psutil

from app.core.notices import Level, Notice, NoticeBus
from app.core.runs.history import RunHistory
from app.core.runs.output import APP_PREFIX
from app.core.runs.records import Outcome, RunProcesses, RunRecord
from app.platform.process_groups import GroupRef, GroupStopper, Stopped

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted by an app crash"


def _owner_alive(p: RunProcesses) -> bool:
    """The app that ran it still runs (another app on this home: not ours to judge)."""
    if p.app_pid == os.getpid():
        return False
    try:
        return abs(psutil.Process(p.app_pid).create_time() - p.app_started) < 1.0
    except psutil.Error:
        return False


def _ended_at(r: RunRecord) -> float:
    """When the run last showed life: its log's last write, else its start."""
    try:
        return max(r.started_at, Path(r.log_file).stat().st_mtime)
    except OSError:
        return r.started_at


def _note(path: Path, lines: list[str]) -> None:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(f"{APP_PREFIX}{line}\n" for line in lines))
    except OSError as e:
        log.warning("Cannot add to the run log %s: %s", path, e)


async def recover_interrupted(
    history: RunHistory, notices: NoticeBus, grace: float
) -> list[RunRecord]:
    """Reap and record every run the app's death left as running; the new records."""
    done = []
    for r in history.in_progress():
        procs = r.processes
        if procs is not None and _owner_alive(procs):
            log.info("The run of %s is recorded by a live app (PID %d)", r.log_file, procs.app_pid)
            continue
        stopped = Stopped()
        if procs is not None:
            ref = GroupRef(leader=0, pgid=procs.pgid, mark=procs.mark, since=procs.since)
            stopped = await GroupStopper(ref, trust_group=False).stop(grace)
        message = INTERRUPTED
        if stopped.count:
            n = stopped.count
            message += (
                f"; {n} of its processes {'were' if n != 1 else 'was'} still running "
                f"({', '.join(stopped.found)}); stopped {'them' if n != 1 else 'it'}"
            )
        record = r.model_copy(
            update={
                "outcome": Outcome.INTERRUPTED,
                "duration_s": round(_ended_at(r) - r.started_at, 3),
                "message": message,
                "processes": None,
            }
        )
        when = dt.datetime.fromtimestamp(r.started_at).isoformat(sep=" ", timespec="seconds")
        _note(
            record.log_path,
            [
                "The app stopped during this run (a crash, a kill or a power cut).",
                f"At the next start: run {message}.",
            ],
        )
        history.add(record)
        log.warning("The FamilyLog run started %s was %s", when, message)
        notices.emit(
            Notice(
                Level.WARNING,
                "FamilyLog run interrupted",
                f"The run started {when} was {message}. Its output up to then is in its log.",
                record.log_path,
            )
        )
        done.append(record)
    return done
