"""The download tests' fixtures: the stand-in hub and the generated GGUFs it serves."""

from tests.support.hub import hub as hub  # noqa: F401
from tests.support.hub import hub_files as hub_files  # noqa: F401
