"""The command line's tests share the API tests' started core and the run tests' FamilyLog
folder."""

from tests.api.conftest import api_settings, start_api  # noqa: F401 (fixtures)
from tests.runs.conftest import familylog_dir  # noqa: F401 (fixture)
