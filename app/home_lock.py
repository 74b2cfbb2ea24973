"""One running app per app home, whatever the mode: the tray, ``--headless``, or a one-off
``--process-now``.

While it runs, the app holds an OS lock on ``state/app.lock`` (released by the OS when the
app ends, however it ends) and says who it is in ``state/app.json``: its PID and start time,
its mode and, once it serves, its API's address. A second app on the same home is refused
with a message naming the first; a command meant for the running app is forwarded to it
(``app.main``: over the tray's single-instance channel, or through a headless app's API),
so nothing but the running app ever touches its servers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from app.atomic import write_atomic
from app.paths import AppPaths
from app.platform.file_lock import file_lock

log = logging.getLogger(__name__)

MODES = {
    "tray": "the tray app",
    "headless": "familylog-tray --headless",
    "process-now": "familylog-tray --process-now",
}


@dataclass(frozen=True)
class Holder:
    """The app that holds a home."""

    pid: int
    started: float  # its process's start time (time.time())
    mode: str  # "tray", "headless" or "process-now"
    api_url: str | None = None  # where its API answers, once it does

    def describe(self) -> str:
        """ "familylog-tray --headless (PID 123, running since 10:02)"."""
        what = MODES.get(self.mode, f"familylog-tray ({self.mode})")
        since = dt.datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M")
        return f"{what} (PID {self.pid}, running since {since})"


def _lock_path(paths: AppPaths) -> Path:
    return paths.state_dir / "app.lock"


def _info_path(paths: AppPaths) -> Path:
    return paths.state_dir / "app.json"


def _read(paths: AppPaths) -> Holder | None:
    try:
        raw = json.loads(_info_path(paths).read_text("utf-8"))
        return Holder(**raw)
    except (OSError, ValueError, TypeError):
        return None


def running_app(paths: AppPaths, wait: float = 2.0) -> Holder | None:
    """The app that holds ``paths``'s home now; None when none does. An app that has just
    taken the lock gets ``wait`` seconds to say who it is."""
    probe = file_lock(_lock_path(paths))
    try:
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        if probe.try_lock():
            probe.unlock()
            return None
    except OSError as e:
        log.warning("Cannot look at the app lock %s: %s", _lock_path(paths), e)
        return None
    deadline = time.monotonic() + wait
    while True:
        holder = _read(paths)
        if holder is not None and psutil.pid_exists(holder.pid):
            return holder
        if time.monotonic() >= deadline:
            # held, but nobody says by whom (an older version, a file removed by hand)
            return Holder(pid=0, started=time.time(), mode="unknown")
        time.sleep(0.05)


class HomeLock:
    """This process's hold on its app home."""

    def __init__(self, paths: AppPaths) -> None:
        self.paths = paths
        self._lock = file_lock(_lock_path(paths))
        self.me: Holder | None = None

    def acquire(self, mode: str) -> Holder | None:
        """Take the home for this process: None when it is ours now, else the app that
        holds it."""
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        if not self._lock.try_lock():
            return running_app(self.paths) or Holder(pid=0, started=time.time(), mode="unknown")
        try:
            started = psutil.Process().create_time()
        except psutil.Error:
            started = time.time()
        self.me = Holder(pid=os.getpid(), started=started, mode=mode)
        self._write()
        return None

    def serving(self, api_url: str | None) -> None:
        """Say where this app's API answers (commands for a headless app go there)."""
        if self.me is not None and self.me.api_url != api_url:
            self.me = Holder(self.me.pid, self.me.started, self.me.mode, api_url)
            self._write()

    def _write(self) -> None:
        assert self.me is not None
        try:
            write_atomic(_info_path(self.paths), json.dumps(asdict(self.me)))
        except OSError as e:
            log.warning("Cannot write %s: %s", _info_path(self.paths), e)

    def release(self) -> None:
        if self.me is not None:
            try:
                if _read(self.paths) == self.me:
                    _info_path(self.paths).unlink(missing_ok=True)
            except OSError:
                pass
            self.me = None
        self._lock.unlock()

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def no_window(holder: Holder) -> str:
    """What ``--show``/``--logs`` print when the app on this home runs without a tray."""
    return (
        f"familylog-tray: {holder.describe()} runs on this app home without a tray, so "
        "there is no window to show. Stop it and start `familylog-tray` for the tray."
    )


def refusal(holder: Holder, paths: AppPaths) -> str:
    """The one line a second app on the same home prints."""
    where = paths.config_dir
    if holder.mode == "unknown":
        return (
            f"familylog-tray: another familylog-tray already runs on the app home {where}; "
            "stop it first (one app per home)."
        )
    return (
        f"familylog-tray: {holder.describe()} already runs on the app home {where}; "
        "stop it first, or send it commands (--process-now, --load, --unload, --ps, "
        "--rescan), which go to the running app."
    )
