"""FamilyLog runs: "Process now", the daily schedule and the run history (no Qt here)."""
