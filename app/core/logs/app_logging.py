"""The app's own log: a size-capped rotating file in the app home, plus the console."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections.abc import Callable
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_HANDLER_NAME = "familylog-tray-file"

Limits = Callable[[], tuple[int, int]]  # (bytes over which the file rotates, old files kept)


class _RotatingLog(logging.handlers.RotatingFileHandler):
    """A rotating file whose limits can follow the settings: asked before each record."""

    limits: Limits | None = None

    def shouldRollover(self, record: logging.LogRecord) -> int:  # noqa: N802 (logging API)
        if self.limits is not None:
            self.maxBytes, self.backupCount = self.limits()
        return super().shouldRollover(record)


def setup_logging(
    log_file: Path,
    *,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 3,
    console: bool | None = None,
    level: int = logging.INFO,
) -> logging.Handler:
    """Install the file handler (once) and, when run from a terminal, a console handler."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        if h.get_name() in (_HANDLER_NAME, _HANDLER_NAME + "-console"):
            root.removeHandler(h)
            h.close()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fh = _RotatingLog(
        log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
    )
    fh.set_name(_HANDLER_NAME)
    fh.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(fh)
    if console is None:
        console = bool(sys.stderr and sys.stderr.isatty())
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.set_name(_HANDLER_NAME + "-console")
        ch.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(ch)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return fh


def installed_log_file() -> Path | None:
    """The file the app's log handler writes to, if ``setup_logging`` has run; for the viewer."""
    for h in logging.getLogger().handlers:
        if h.get_name() == _HANDLER_NAME and isinstance(h, logging.FileHandler):
            return Path(h.baseFilename)
    return None


def follow_log_limits(limits: Limits) -> None:
    """From now on the app's log (if ``setup_logging`` has run) rotates at ``limits()``,
    asked before each record, so a change of the settings applies at once."""
    for h in logging.getLogger().handlers:
        if isinstance(h, _RotatingLog):
            h.limits = limits
