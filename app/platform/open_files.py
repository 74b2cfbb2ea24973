"""The process's limit on open files (descriptors: files, sockets, pipes).

Desktops often start programs with a soft limit of 1,024 while the hard limit allows far
more; the API raises the soft one toward the hard one at start (``raise_open_file_limit``)
and sizes its connection budget from what it got (``open_file_limit``). Windows has no such
per-process limit on sockets: both answer None there.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Any

try:
    import resource as _resource
except ImportError:  # Windows
    _resource = None

log = logging.getLogger(__name__)

WANTED = 65536  # enough for any desktop use; no need to take the whole hard limit
MAC_OPEN_MAX = 10240  # macOS refuses more than kern.maxfilesperproc (often this)


@dataclass(frozen=True)
class OpenFileLimit:
    soft: int
    hard: int | None  # None: unlimited
    was: int  # the soft limit before


def open_file_limit(res: Any = _resource) -> int | None:
    """The soft limit now (None: no limit to respect, as on Windows)."""
    if res is None:
        return None
    soft, _hard = res.getrlimit(res.RLIMIT_NOFILE)
    return None if soft == res.RLIM_INFINITY else int(soft)


def raise_open_file_limit(wanted: int = WANTED, res: Any = _resource) -> OpenFileLimit | None:
    """Raise the soft limit toward ``min(wanted, hard)``; never lowers it. None on Windows."""
    if res is None:
        return None
    soft, hard = res.getrlimit(res.RLIMIT_NOFILE)
    unlimited = hard == res.RLIM_INFINITY
    target = wanted if unlimited else min(wanted, hard)
    if soft != res.RLIM_INFINITY and soft < target:
        for value in (target, min(target, MAC_OPEN_MAX)):
            try:
                res.setrlimit(res.RLIMIT_NOFILE, (value, hard))
                break
            except (ValueError, OSError) as e:
                log.debug("Cannot raise the open-file limit to %d: %s", value, e)
    new_soft, _ = res.getrlimit(res.RLIMIT_NOFILE)
    return OpenFileLimit(
        soft=int(new_soft) if new_soft != res.RLIM_INFINITY else wanted,
        hard=None if unlimited else int(hard),
        was=int(soft) if soft != res.RLIM_INFINITY else wanted,
    )


def out_of_files(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) is the system saying it is out of open files."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def out_of_files_words(res: Any = _resource) -> str:
    """What to tell a person when something failed for want of descriptors."""
    limit = open_file_limit(res)
    said = f" (the limit is {limit:,})" if limit else ""
    return (
        f"the app has run out of open files{said}. This is not the model's fault: close "
        "idle connections to the API or programs holding many files, or raise the limit "
        "(ulimit -n), then try again."
    )
