"""The status page in a real headless Chromium (Debian's), served by the real listener over a
real ledger.

Checks what a person sees: folders, counts, the running file and its progress moving, a
failure with its reason and how to retry, hostile file names shown as text, a phone's
layout, an unreachable ledger, and basic auth. (tests/e2e/test_status_page.py does the same
against a real service transcribing with the real model, and takes the README's screenshot.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from daemon.config.operate import BasicAuthSettings, MetricsSettings
from daemon.web import Metrics, WebServer
from tests.web.browser import api, card, count, open_page
from tests.web.scene import Scene


@pytest.fixture
def fake(tmp_path) -> Scene:
    return Scene(tmp_path)


@pytest.fixture
def server(fake: Scene) -> Iterator[WebServer]:
    with WebServer(MetricsSettings(listen="127.0.0.1:0"), status_ttl=0.5,
                   status=fake.provider) as s:  # fmt: skip
        yield s


def test_what_a_person_sees(browser, server: WebServer) -> None:
    w = open_page(browser, server.url, viewport={"width": 1280, "height": 900})
    page = w.page
    titles = page.locator("section.folder h2").all_inner_texts()
    assert titles == ["Inbox (top level)", "en/meetings/", "en/meetings/<script>alert(1)</", "es/"]
    assert page.locator("#service").inner_text() == "whisperd is running."
    es = card(page, "es")
    assert [count(page, "es", k) for k in ("waiting", "running", "done-today", "failed")] == [
        2,
        1,
        1,
        1,
    ]
    assert [count(page, "en/meetings", k) for k in ("waiting", "done-today")] == [2, 1]
    # the running file, its progress and when it should end
    job = es.locator(".job")
    assert job.locator(".name").inner_text() == "entrevista larga.mp3"
    meta = job.locator(".meta").inner_text()
    assert "% done · ends around " in meta and "(in about" in meta
    # a failure: the reason, and what to do about it
    failed = es.locator(".failed-file")
    assert failed.locator(".name").inner_text() == "ruido.wav"
    assert failed.locator(".reason").inner_text() == (
        "cannot decode es/ruido.wav: invalid data found (the file is damaged; replace it) "
        "(after 1 attempt)"
    )
    assert "replace the file in the inbox, or ask the operator to run:" in failed.inner_text()
    assert failed.locator("code").inner_text() == "whisperd retry es/ruido.wav"
    # names that are not UTF-8, or that are markup, are shown as text
    assert "caf\\xe9 con leche.mp3" in es.locator(".waiting-file").all_inner_texts()
    hostile = card(page, "en/meetings/<script>alert(1)<")
    assert hostile.locator("code").inner_text() == (
        "whisperd retry 'en/meetings/<script>alert(1)</script>.mp3'"
    )
    assert "<img src=x onerror=alert(2)>.mp3" in page.locator(".waiting-file").all_inner_texts()
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # page.js only
    assert page.evaluate("document.querySelectorAll('main img').length") == 0
    assert "retry after: disk full while writing <outbox>/en/meetings/retro.txt" in page.inner_text(
        "main"
    )
    assert (
        page.locator(".throughput").inner_text()
    ) == "Last hour: 3 files transcribed, 26 min of audio, 6× faster than real time."
    assert w.dialogs == [] and w.errors == []


def test_refresh_shows_new_progress(browser, server: WebServer, fake: Scene) -> None:
    page = open_page(browser, server.url, refresh=1).page
    bar = card(page, "es").locator(".bar")
    first = int(bar.get_attribute("aria-valuenow"))
    text = card(page, "es").locator(".job .meta").inner_text()
    assert text.startswith(f"{first}% done")
    fake.set_progress(0.55)  # the worker moves on
    api().expect(bar).not_to_have_attribute("aria-valuenow", str(first), timeout=10000)
    later = int(bar.get_attribute("aria-valuenow"))
    assert later > first
    assert card(page, "es").locator(".job .meta").inner_text().startswith(f"{later}% done")


def test_phone_layout_fits_without_sideways_scrolling(browser, server: WebServer) -> None:
    w = open_page(
        browser,
        server.url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = w.page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    boxes = [page.locator("section.folder").nth(i).bounding_box() for i in range(4)]
    assert all(b["x"] >= 0 and b["x"] + b["width"] <= 390 for b in boxes)
    assert boxes[1]["y"] > boxes[0]["y"]  # one column: cards are stacked
    assert w.errors == []


def test_page_says_when_whisperd_cannot_be_reached(browser, fake: Scene) -> None:
    with WebServer(MetricsSettings(listen="127.0.0.1:0"), status_ttl=0.2,
                   status=fake.provider) as s:  # fmt: skip
        page = open_page(browser, s.url, refresh=1).page
        fake.fail_with = RuntimeError("database is locked")
        problem = page.locator("#problem")
        problem.wait_for(state="visible", timeout=10000)
        assert problem.inner_text().startswith(
            "Cannot get the status from whisperd (status unavailable: RuntimeError: "
            "database is locked). Showing what was known at "
        )
        assert card(page, "es").is_visible()  # the last good view stays
        fake.fail_with = None
        problem.wait_for(state="hidden", timeout=10000)


def test_basic_auth_in_the_browser(browser, fake: Scene) -> None:
    auth = BasicAuthSettings(user="ops", password="pässword")
    settings = MetricsSettings(listen="127.0.0.1:0", auth=auth)
    metrics = Metrics(version="0.1.0", engine="whisper", device="cpu", process_metrics=False)
    with WebServer(settings, metrics=metrics, status=fake.provider) as server:
        context = browser.new_context()  # no credentials: headless Chromium shows nothing
        with pytest.raises(api().Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
            context.new_page().goto(server.url)
        response = context.request.get(server.url + "api/status")
        assert response.status == 401
        assert response.headers["www-authenticate"] == 'Basic realm="whisperd", charset="UTF-8"'
        assert "entrevista" not in response.text()
        context.close()
        wrong = browser.new_context(http_credentials={"username": "ops", "password": "nope"})
        assert wrong.new_page().goto(server.url).status == 401
        wrong.close()
        w = open_page(
            browser, server.url, http_credentials={"username": "ops", "password": "pässword"}
        )
        assert count(w.page, "es", "waiting") == 2  # fetch('api/status') was let in too
        assert w.page.evaluate("fetch('metrics').then(r => r.status)") == 200
