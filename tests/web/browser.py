"""A real headless Chromium (Debian's /usr/bin/chromium) driven through playwright, for the
status page's tests; they skip when either is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def api():
    """playwright's sync API (the test skips without playwright)."""
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A headless Chromium for the module's tests (re-exported by the conftest files)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with api().sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


class Watched:
    """A page plus what it said on the side: dialogs (alert) and console errors."""

    def __init__(self, page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def open_page(browser, url: str, refresh: int = 60, **context_args) -> Watched:
    """The page, refreshing every ``refresh`` s (the default keeps the DOM still while a
    test reads it; a refresh rebuilds it)."""
    context = browser.new_context(**context_args)
    watched = Watched(context.new_page())
    watched.page.goto(url + f"?refresh={refresh}")
    watched.page.wait_for_selector("section.folder", timeout=15000)
    return watched


def card(page, folder: str):
    return page.locator(f'section.folder[data-folder="{folder}"]')


def count(page, folder: str, kind: str) -> int:
    return int(card(page, folder).locator(f".count.{kind} strong").inner_text())
