"""Fixtures of the end-to-end tests: the headless browser of the status page's test."""

from tests.web.browser import browser  # noqa: F401 - a fixture
