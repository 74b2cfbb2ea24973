"""The check runs against a started app with its API: the API tests' fixtures."""

from tests.api.conftest import api_settings, start_api  # noqa: F401
