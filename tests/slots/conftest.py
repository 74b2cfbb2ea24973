"""Fixtures for the slot cache tests: the API tests' started core and settings."""

from tests.api.conftest import api_settings, start_api  # noqa: F401
