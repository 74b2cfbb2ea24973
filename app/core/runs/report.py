"""What the user is told at the end of a run."""

from __future__ import annotations

from app.core.notices import Level, Notice
from app.core.runs.records import Outcome, RunRecord, format_duration

FAILURE_TAIL = 8  # lines of output in the notice of a failed run


def run_notice(
    r: RunRecord, tail: list[str], write_error: str | None, timeout_minutes: float
) -> Notice:
    """The notice at the end of a run: the outcome, the duration, the last lines of a failure."""
    took = format_duration(r.duration_s)
    last = "\n".join(tail[-FAILURE_TAIL:])
    last = f"\nLast lines:\n{last}" if last else ""
    extra = f"\n{write_error}" if write_error else ""
    if r.outcome is Outcome.SUCCEEDED:
        return Notice(Level.INFO, "FamilyLog run finished", f"Done in {took}.{extra}", r.log_path)
    if r.outcome is Outcome.CANCELLED:
        return Notice(
            Level.WARNING, "FamilyLog run cancelled", f"Cancelled after {took}.", r.log_path
        )
    if r.outcome is Outcome.TIMED_OUT:
        limit = f"{timeout_minutes:g} min"
        text = f"Stopped after {took}: the limit is {limit} (RUN_TIMEOUT_MINUTES).{last}"
        return Notice(Level.ERROR, "FamilyLog run timed out", text + extra, r.log_path)
    if r.outcome is Outcome.NOT_STARTED:
        return Notice(Level.ERROR, "FamilyLog run not started", r.message + extra, r.log_path)
    text = f"Exit code {r.exit_code} after {took}.{last}"
    return Notice(Level.ERROR, "FamilyLog run failed", text + extra, r.log_path)
