"""Sizes, memory and durations in words (``app.core.units``): the one set of formats every
window and the command line use (file sizes in decimal units, memory as the GPU panel
shows it)."""

from __future__ import annotations

import pytest

from app.core.units import elapsed_text, gb, memory_text, mib_text, size_text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1_000, "1.0 KB"),
        (354_000, "354 KB"),
        (512_000_000, "512 MB"),
        (4_300_000_000, "4.3 GB"),
        (9_949_999_999, "9.9 GB"),
        (25_000_000_000, "25 GB"),
    ],
)
def test_file_sizes_in_decimal_units(n: int, text: str) -> None:
    assert size_text(n) == text


@pytest.mark.parametrize(
    ("mib", "text"),
    [
        (0, "<1 MB"),
        (0.5, "<1 MB"),
        (120, "120 MB"),
        (1023, "1023 MB"),
        (1024, "1.0 GB"),
        (4.3 * 1024, "4.3 GB"),
        (24 * 1024, "24 GB"),
    ],
)
def test_memory_as_the_gpu_panel_shows_it(mib: float, text: str) -> None:
    assert mib_text(mib) == text
    assert memory_text(mib * 2**20) == text


@pytest.mark.parametrize(("seconds", "text"), [(-3, "0:00"), (84.9, "1:24"), (3723, "1:02:03")])
def test_elapsed_time(seconds: float, text: str) -> None:
    assert elapsed_text(seconds) == text


def test_gb_drops_the_decimal_only_on_big_round_numbers() -> None:
    assert [gb(m) for m in (512, 1024, 9.98 * 1024, 10 * 1024, 10.5 * 1024)] == [
        "0.5",
        "1.0",
        "10.0",
        "10",
        "10.5",
    ]
