"""What a check found: one row per check of a model (pass, fail or skip, with the figure or the
reason in words), as a plain-text table and as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"
PAIR = "FamilyLog"  # the subject of the seed's step-9 checks


@dataclass(frozen=True)
class CheckRow:
    subject: str  # a model's key, or PAIR
    check: str  # "load", "chat", "image", "embedding", "unload", …
    result: str  # PASS, FAIL or SKIP
    detail: str  # the figures, or why it failed or was skipped


@dataclass
class Report:
    rows: list[CheckRow] = field(default_factory=list)
    refused: str | None = None  # why the check did not run at all

    @property
    def ok(self) -> bool:
        return self.refused is None and bool(self.rows) and all(r.result != FAIL for r in self.rows)

    @property
    def failures(self) -> list[CheckRow]:
        return [r for r in self.rows if r.result == FAIL]

    def json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "refused": self.refused,
            "checks": [asdict(r) for r in self.rows],
        }


HEADS = ("MODEL", "CHECK", "RESULT", "DETAIL")


def table_text(report: Report) -> str:
    """The rows as a table, a model's key on its first row only; then one summary line."""
    if report.refused:
        return f"Not checked: {report.refused}"
    cells: list[list[str]] = [list(HEADS)]
    last = None
    for r in report.rows:
        cells.append([r.subject if r.subject != last else "", r.check, r.result, r.detail])
        last = r.subject
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join([*(c[i].ljust(widths[i]) for i in range(3)), c[3]]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in [*widths, len(HEADS[3])]))
    failed = report.failures
    lines.append("")
    lines.append(
        "All checks passed."
        if report.ok
        else f"{len(failed)} check{'s' if len(failed) != 1 else ''} failed."
    )
    return "\n".join(lines)


def size_words(n: int | None, kind: str | None = None) -> str:
    """``1.2 GiB VRAM``, ``412 MiB RAM``; "memory unknown" without a figure."""
    if not n:
        return "memory unknown"
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    figure = (
        f"{value:.0f} {unit}" if unit in ("B", "KiB") or value >= 100 else f"{value:.1f} {unit}"
    )
    return f"{figure} {kind.upper()}" if kind else figure
