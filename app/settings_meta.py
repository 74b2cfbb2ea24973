"""What every setting says besides its value: its tab in Settings… and when a change made
while the app runs takes effect (``Applies``). ``app.config`` and the modules that hold a
group of its fields (``app.settings_machines``) build each field's ``json_schema_extra``
with ``in_tab``; the dialog is built from the fields, so a new setting needs no UI code."""

from __future__ import annotations

from enum import StrEnum

# The tabs of Settings…, in order.
SERVER = "Models and server"
PLACEMENT = "Placement"
API = "API"
MACHINES = "Other machines"
RUNS = "FamilyLog runs"
LOGS = "Logs"
GROUPS = (SERVER, PLACEMENT, API, MACHINES, RUNS, LOGS)


class Applies(StrEnum):
    """When a setting changed in a running app takes effect."""

    NOW = "now"  # read each time it is used
    NEXT_LOAD = "next load"  # used by the next load of a model; running servers keep theirs
    RESTART = "restart"  # read once, when the app starts


NOW, NEXT_LOAD, RESTART = Applies.NOW, Applies.NEXT_LOAD, Applies.RESTART


def in_tab(group: str, applies: Applies) -> dict[str, str]:
    """A field's tab in Settings…, and when a change of it takes effect."""
    if group not in GROUPS:
        raise ValueError(f"{group!r} is not one of {GROUPS}")
    return {"group": group, "applies": Applies(applies).value}
