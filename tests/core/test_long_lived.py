"""Start-up's objects are frozen out of the garbage collector's full passes (in a child
process: freezing the test process would keep every test's objects)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from app.core.long_lived import freeze_long_lived
kept = [[i] for i in range(200_000)]  # long-lived objects, as start-up makes them
garbage = []
garbage.append(garbage)  # a cycle nobody holds: collected first, not frozen
del garbage
before = len(gc.get_objects(generation=2)) + len(gc.get_objects(generation=1))
frozen = freeze_long_lived()
after = len(gc.get_objects(generation=2)) + len(gc.get_objects(generation=1))
print(frozen, before, after)
"""


def test_start_up_objects_leave_the_full_passes() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    frozen, before, after = map(int, out.split())
    assert frozen >= 200_000  # the kept lists, now in the permanent generation
    assert after < before - 200_000  # a full pass no longer walks them
