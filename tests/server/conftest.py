"""The real server of the end-to-end tests, for the CLI tests."""

from tests.e2e.conftest import serve, server, settings  # noqa: F401
