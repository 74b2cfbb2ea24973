"""When a failed or hung server is started again: the back-off, the limit within a window,
and the hung check's timing (``RESTART_ON_CRASH``, ``HUNG_PROBE_SECONDS``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.config import Settings

MAX_TICK = 15.0  # seconds: the longest a ready server goes without a health check


@dataclass(frozen=True)
class RestartPolicy:
    enabled: bool = True  # RESTART_ON_CRASH
    first_delay: float = 1.0  # seconds before the first restart; doubled for each next one
    max_delay: float = 60.0
    max_crashes: int = 3  # restarts allowed within `window`; one more failure and we give up
    window: float = 600.0
    probe_interval: float = 60.0  # HUNG_PROBE_SECONDS: unanswered this long = hung; 0: off
    probe_timeout: float = 5.0  # unanswered this long: "not responding" (at most a quarter)

    @classmethod
    def from_settings(cls, s: Settings, **overrides) -> RestartPolicy:
        base = cls(enabled=s.RESTART_ON_CRASH, probe_interval=s.HUNG_PROBE_SECONDS)
        return cls(**{**base.__dict__, **overrides})

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2 ** max(0, attempt - 1), self.max_delay)

    @property
    def tick(self) -> float:
        """How often each ready server is checked: a quarter of the hung limit."""
        return min(max(self.probe_interval / 4, 0.02), MAX_TICK)

    @property
    def suspect_after(self) -> float:
        """Unanswered this long: "not responding"."""
        return min(self.probe_timeout, self.probe_interval / 4)
