"""Sizes, memory and durations in words, one way for the whole app: file sizes in decimal
units (as file managers and browsers show them), memory as the GPU panel shows it."""

from __future__ import annotations


def gb(mib: float) -> str:
    """MiB as GB with one decimal, without a trailing ".0" on round numbers."""
    v = mib / 1024
    return f"{v:.0f}" if abs(v - round(v)) < 0.05 and v >= 10 else f"{v:.1f}"


def size_text(n_bytes: int | float) -> str:
    """ "4.3 GB", "512 MB", "354 KB" (decimal units, as file managers show them)."""
    n = float(n_bytes)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{n:.0f} B"


def mib_text(mib: float) -> str:
    """ "4.3 GB" from 4.3 GiB, "120 MB" under one GiB (the GPU panel's units)."""
    return f"{gb(mib)} GB" if mib >= 1024 else f"{max(mib, 0.1):.0f} MB" if mib >= 1 else "<1 MB"


def memory_text(n_bytes: int | float) -> str:
    """``mib_text`` of a byte count: memory a model needs or a machine has free."""
    return mib_text(n_bytes / 2**20)


def elapsed_text(seconds: float) -> str:
    """ "1:24", "1:02:03": a time taken or left."""
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
