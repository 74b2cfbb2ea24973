"""The benchmark's results: medians and spread per server and prompt, the table, the files."""

from __future__ import annotations

import csv
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.core.bench.runner import Measurement

FIELDS = (
    "prompt_tokens_per_second",
    "generation_tokens_per_second",
    "time_to_first_token_ms",
    "total_ms",
)


@dataclass(frozen=True)
class ResultRow:
    """One server and prompt: the median of each figure and its spread (min, max)."""

    server: str
    model: str
    prompt: str
    runs: int
    prompt_tokens_per_second: float | None
    generation_tokens_per_second: float | None
    time_to_first_token_ms: float | None
    total_ms: float | None
    spread: dict[str, tuple[float, float] | None]
    source: str
    note: str = ""  # shortened to fit, skipped or failed and why
    failed: bool = False  # it did not run for a reason other than the model's size

    def json(self) -> dict[str, Any]:
        d = asdict(self)
        d["spread"] = {k: list(v) if v else None for k, v in self.spread.items()}
        return d


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def summarize(measurements: list[Measurement]) -> list[ResultRow]:
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.server, m.model, m.prompt), []).append(m)
    rows = []
    for (server, model, prompt), every in groups.items():
        ms = [m for m in every if not m.error]
        errors = [m.error for m in every if m.error]
        notes = list(dict.fromkeys(m.note for m in ms if m.note))
        med: dict[str, float | None] = {}
        spread: dict[str, tuple[float, float] | None] = {}
        for f in FIELDS:
            xs = [getattr(m, f) for m in ms if getattr(m, f) is not None]
            med[f] = _r(statistics.median(xs)) if xs else None
            spread[f] = (round(min(xs), 1), round(max(xs), 1)) if xs else None
        rows.append(
            ResultRow(
                server=server,
                model=model,
                prompt=prompt,
                runs=len(ms),
                spread=spread,
                source=ms[0].source if ms else "",
                note="; ".join(errors[:1] + notes),
                failed=any(e.startswith("failed") for e in errors),
                **med,  # type: ignore[arg-type]
            )
        )
    return rows


def _cell(v: float | None, sp: tuple[float, float] | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.1f} ({sp[0]:,.1f}–{sp[1]:,.1f})" if sp and sp[0] != sp[1] else f"{v:,.1f}"


TABLE_HEADS = (
    "server",
    "prompt",
    "prompt t/s",
    "generation t/s",
    "first token ms",
    "total ms",
    "note",
)


def table_cells(row: ResultRow) -> list[str]:
    return [
        f"{row.server} ({row.model})",
        row.prompt,
        *(_cell(getattr(row, f), row.spread.get(f)) for f in FIELDS),
        row.note,
    ]


def table_text(rows: list[ResultRow]) -> str:
    """The results as a plain-text table: medians, with (min–max) over the runs; the note
    column only when a row has one."""
    heads = TABLE_HEADS if any(r.note for r in rows) else TABLE_HEADS[:-1]
    cells = [list(heads)] + [table_cells(r)[: len(heads)] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(heads))]
    lines = []
    for n, c in enumerate(cells):
        lines.append(
            "  ".join(
                c[i].ljust(widths[i]) if i < 2 or i == 6 else c[i].rjust(widths[i])
                for i in range(len(c))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_results(
    folder: Path, rows: list[ResultRow], measurements: list[Measurement], stamp: str | None = None
) -> tuple[Path, Path]:
    """``<stamp>.json`` (the summary rows and every run) and ``<stamp>.csv`` (every run)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    json_path, csv_path = folder / f"benchmark-{stamp}.json", folder / f"benchmark-{stamp}.csv"
    write_json(json_path, rows, measurements)
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(Measurement.__dataclass_fields__))
        w.writeheader()
        for m in measurements:
            w.writerow(asdict(m))
    return json_path, csv_path


def write_json(path: Path, rows: list[ResultRow], measurements: list[Measurement]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "results": [r.json() for r in rows],
        "measurements": [asdict(m) for m in measurements],
    }
    path.write_text(json.dumps(data, indent=2))
