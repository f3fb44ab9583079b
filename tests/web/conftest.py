"""Fixtures of the web tests: the headless browser."""

from tests.web.browser import browser  # noqa: F401 - a fixture
