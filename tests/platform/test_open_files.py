"""The open-file limit: raised toward the hard limit at start, never lowered; what a
failure for want of descriptors is called."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from app.platform.open_files import (
    MAC_OPEN_MAX,
    open_file_limit,
    out_of_files,
    out_of_files_words,
    raise_open_file_limit,
)

RAISE = """
import resource
from app.platform.open_files import raise_open_file_limit
resource.setrlimit(resource.RLIMIT_NOFILE, (256, {hard}))
got = raise_open_file_limit()
print(got.was, got.soft, got.hard, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE on Windows")
def test_the_soft_limit_is_raised_to_the_hard_one_in_a_real_process() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if limit <= 256:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    out = subprocess.run(
        [sys.executable, "-c", RAISE.format(hard=limit)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["256", str(limit), str(limit), str(limit)]


class FakeResource:
    """``resource`` as macOS has it: an unlimited hard limit, and a kernel that refuses
    more than its per-process maximum (``kern.maxfilesperproc``)."""

    RLIMIT_NOFILE = 8
    RLIM_INFINITY = 2**63 - 1

    def __init__(self, soft: int, hard: int, kernel_max: int) -> None:
        self.limits = (soft, hard)
        self.kernel_max = kernel_max

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if limits[0] > self.kernel_max:
            raise ValueError("not allowed to raise maximum limit")
        self.limits = limits


def test_an_unlimited_hard_limit_is_raised_as_far_as_the_kernel_lets() -> None:
    mac = FakeResource(256, FakeResource.RLIM_INFINITY, kernel_max=MAC_OPEN_MAX)
    got = raise_open_file_limit(res=mac)
    assert (got.was, got.soft, got.hard) == (256, MAC_OPEN_MAX, None)
    roomy = FakeResource(256, FakeResource.RLIM_INFINITY, kernel_max=10**6)
    assert raise_open_file_limit(res=roomy).soft == 65536  # enough: not the whole limit


def test_a_higher_limit_is_never_lowered() -> None:
    big = FakeResource(100_000, 200_000, kernel_max=10**6)
    assert raise_open_file_limit(res=big).soft == 100_000
    assert open_file_limit(res=big) == 100_000
    assert raise_open_file_limit(res=None) is None and open_file_limit(res=None) is None


def test_out_of_files_is_found_through_the_causes() -> None:
    emfile = OSError(errno.EMFILE, "Too many open files")
    try:
        try:
            raise emfile
        except OSError as e:
            raise RuntimeError("Cannot start llama-server") from e
    except RuntimeError as wrapped:
        assert out_of_files(wrapped)
    assert out_of_files(OSError(errno.ENFILE, "File table overflow"))
    assert not out_of_files(OSError(errno.ENOSPC, "No space left on device"))
    assert not out_of_files(None)
    words = out_of_files_words(res=FakeResource(1024, 1024, 1024))
    assert "run out of open files (the limit is 1,024)" in words and "ulimit -n" in words
