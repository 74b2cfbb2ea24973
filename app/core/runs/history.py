"""The last runs, kept across restarts in one JSON file written atomically."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from app.atomic import write_atomic
from app.core.runs.records import Outcome, RunRecord

log = logging.getLogger(__name__)

_RECORDS = TypeAdapter(list[RunRecord])


class RunHistory:
    """``records`` oldest first; ``recent()`` newest first. At most ``limit`` are kept."""

    def __init__(self, path: Path, limit: int = 50) -> None:
        self.path = path
        self.limit = limit
        self.records: list[RunRecord] = []
        self.problem: str | None = None  # set when the file could not be read
        self.load()

    def load(self) -> None:
        self.problem = None
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self.records = []
            return
        except OSError as e:
            self.records = []
            self.problem = f"Cannot read the run history {self.path}: {e.strerror or e}"
            log.error(self.problem)
            return
        try:
            data = json.loads(raw)
            items = data.get("runs", []) if isinstance(data, dict) else data
            self.records = _RECORDS.validate_python(items)[-self.limit :]
        except (ValueError, ValidationError, AttributeError) as e:
            kept = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            try:
                self.path.replace(kept)
                where = f"it was kept as {kept}"
            except OSError:
                where = "it could not be moved aside"
            self.records = []
            self.problem = (
                f"The run history {self.path} was unreadable ({type(e).__name__}); "
                f"{where} and a new history was started."
            )
            log.warning(self.problem)

    def add(self, record: RunRecord) -> None:
        """Add ``record``, or replace the one of the same run (the same log file): a run is
        written when it starts and again when it ends."""
        same = [i for i, r in enumerate(self.records) if r.log_file == record.log_file]
        if same:
            self.records[same[-1]] = record
        else:
            self.records = [*self.records, record][-self.limit :]
        self.save()

    def in_progress(self) -> list[RunRecord]:
        """Runs recorded as running: after an app crash, the ones it left."""
        return [r for r in self.records if r.outcome is Outcome.RUNNING]

    def save(self) -> None:
        data = {"version": 1, "runs": [r.model_dump(mode="json") for r in self.records]}
        try:
            write_atomic(self.path, json.dumps(data, indent=1, ensure_ascii=False))
        except OSError as e:
            self.problem = f"Cannot save the run history {self.path}: {e.strerror or e}"
            log.error(self.problem)

    def recent(self, n: int | None = None) -> list[RunRecord]:
        out = list(reversed(self.records))
        return out if n is None else out[:n]

    def last_started_at(self) -> float | None:
        return max((r.started_at for r in self.records), default=None)
