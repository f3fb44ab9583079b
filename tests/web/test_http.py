"""The listener over real sockets on 127.0.0.1 (and ::1): routes, auth, cache, errors."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.config.operate import BasicAuthSettings, MetricsSettings
from daemon.web import ListenError, Metrics, WebServer
from daemon.web.http import StatusCache
from tests.web.scene import Scene


def settings(listen: str = "127.0.0.1:0", **auth: str) -> MetricsSettings:
    return MetricsSettings(listen=listen, auth=BasicAuthSettings(**auth) if auth else None)


def request(
    server: WebServer,
    method: str = "GET",
    path: str = "/",
    headers: dict | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def wait_for(condition, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return Scene(tmp_path_factory.mktemp("scene"))


@pytest.fixture
def fake(scene: Scene) -> Iterator[Scene]:
    scene.calls, scene.fail_with = 0, None
    yield scene
    scene.fail_with = None


@pytest.fixture
def server(fake: Scene) -> Iterator[WebServer]:
    def snapshot() -> dict:
        report = fake.provider()
        return {"counts": report["counts"], "queue_ready": report["queue_ready"],
                "running": report["running"]}  # fmt: skip

    metrics = Metrics(version="0.1.0", engine="whisper", device="cpu", snapshot=snapshot)
    with WebServer(settings(), metrics=metrics, status=fake.provider) as s:
        yield s


def test_page_and_its_files(server: WebServer) -> None:
    status, headers, body = request(server, path="/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'<script src="static/page.js"' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["server"] == "whisperd"
    status, headers, js = request(server, path="/static/page.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b"innerHTML" not in js  # data goes in with textContent only
    status, headers, _ = request(server, path="/static/page.css?v=1")
    assert status == 200 and headers["content-type"].startswith("text/css")


def test_metrics_route(server: WebServer) -> None:
    status, headers, body = request(server, path="/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    queued = [s for s in families["whisperd_jobs"].samples if s.labels["state"] == "queued"]
    assert queued[0].value == 4  # three waiting and one backing off
    status, headers, body = request(
        server, path="/metrics", headers={"Accept": "application/openmetrics-text"}
    )
    assert headers["content-type"].startswith("application/openmetrics-text")


def test_status_route_is_public_json(server: WebServer) -> None:
    status, headers, body = request(server, path="/api/status")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    data = json.loads(body)
    assert "inbox" not in data and b"/tmp/" not in body
    assert {f["folder"] for f in data["folders"]} >= {"es", "en/meetings"}
    assert b"<script>" not in body  # escaped as \u003c in the JSON text
    assert "files" not in data  # every file of the ledger only when asked for:
    status, _, body = request(server, path="/api/status?files=1")
    assert status == 200 and len(json.loads(body)["files"]) == 11


def test_not_found_and_read_only(server: WebServer) -> None:
    assert request(server, path="/etc/passwd")[0] == 404
    assert request(server, path="/static/../http.py")[0] == 404
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
        status, headers, _ = request(server, method, "/api/status")
        assert (status, headers["allow"]) == (405, "GET, HEAD"), method


def test_head_has_headers_without_body(server: WebServer) -> None:
    status, headers, body = request(server, "HEAD", "/")
    _, _, full = request(server, "GET", "/")
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(full)


def test_basic_auth_guards_every_route(fake: Scene) -> None:
    metrics = Metrics(version="0.1.0", engine="whisper", device="cpu", process_metrics=False)
    guarded = settings(user="ops", password="s3cret é")
    with WebServer(guarded, metrics=metrics, status=fake.provider) as server:
        for path in ("/", "/metrics", "/api/status", "/nope"):
            status, headers, body = request(server, path=path)
            assert status == 401, path
            assert headers["www-authenticate"] == 'Basic realm="whisperd", charset="UTF-8"'
            assert b"whisperd" not in body.lower()
        bad = [
            basic("ops", "wrong"),
            basic("ops2", "s3cret é"),
            basic("ops", "s3cret"),
            {"Authorization": "Basic !!!"},
            {"Authorization": "Bearer x"},
            {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
        ]
        for headers in bad:
            assert request(server, path="/api/status", headers=headers)[0] == 401, headers
        good = {"Authorization": "Basic " + base64.b64encode("ops:s3cret é".encode()).decode()}
        status, _, body = request(server, path="/api/status", headers=good)
        assert status == 200 and json.loads(body)["service"]["running"] is True
        assert request(server, path="/metrics", headers=good)[0] == 200
    assert fake.calls == 1  # refused requests never reached the ledger


def test_status_is_built_once_for_many_clients(fake: Scene) -> None:
    with WebServer(settings(), status_ttl=60, status=fake.provider) as server:
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(request(server, path="/api/status")[0]))
            for _ in range(20)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 20 and fake.calls == 1


def test_status_cache_rebuilds_after_the_ttl_stretched_by_cost_never_concurrently() -> None:
    now = [100.0]
    inside, most = [0], [0]

    def slow_report(files: bool) -> dict:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        inside[0] -= 1
        return {"service": {"running": True}, "n": now[0]}

    cache = StatusCache(slow_report, ttl=1.0, clock=lambda: now[0])
    assert json.loads(cache.get()[1])["n"] == 100.0
    now[0] = 100.9
    assert json.loads(cache.get()[1])["n"] == 100.0  # still fresh
    now[0] = 101.0
    assert json.loads(cache.get()[1])["n"] == 101.0

    def costly_report(files: bool) -> dict:  # takes 0.5 s of the fake clock
        now[0] += 0.5
        return {"n": now[0]}

    cache = StatusCache(costly_report, ttl=1.0, clock=lambda: now[0], cost=lambda: now[0])
    assert json.loads(cache.get()[1])["n"] == 101.5
    now[0] = 151.4  # 100 x 0.5 s: reused although the ttl is 1 s
    assert json.loads(cache.get()[1])["n"] == 101.5
    now[0] = 151.5
    assert json.loads(cache.get()[1])["n"] == 152.0
    cache = StatusCache(slow_report, ttl=0.0)  # every call rebuilds: they queue, one at a time
    threads = [threading.Thread(target=cache.get) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


def test_a_failing_provider_gives_503_without_paths(fake: Scene) -> None:
    fake.fail_with = OSError("unable to open /var/lib/whisperd/ledger.sqlite3\nsecond line")
    with WebServer(settings(), status=fake.provider) as server:
        status, _, body = request(server, path="/api/status")
        assert status == 503
        assert json.loads(body) == {
            "error": "status unavailable: OSError: unable to open …/ledger.sqlite3"
        }


def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as info:
            WebServer(settings(f"127.0.0.1:{port}"), status=dict).start()
        message = str(info.value)
        assert message == (
            f"cannot listen on 127.0.0.1:{port}: the address is already in use (another "
            "whisperd or exporter?); choose another port in metrics.listen"
        )
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unknown_host_and_bad_listen_are_listen_errors() -> None:
    with pytest.raises(ListenError, match="unknown host"):
        WebServer(settings("no-such-host.invalid:9464"), status=dict).start()


def test_ipv6_loopback(fake: Scene) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 on this machine")
    with WebServer(settings("[::1]:0"), status=fake.provider) as server:
        assert server.url.startswith("http://[::1]:")
        assert request(server, path="/api/status")[0] == 200


def test_stop_frees_the_port_and_ends_the_thread(fake: Scene) -> None:
    server = WebServer(settings(), status=fake.provider)
    server.start()
    port = server.address[1]
    assert request(server, path="/")[0] == 200
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    assert not any(t.name == "whisperd-http" for t in threading.enumerate())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    again = WebServer(settings(f"127.0.0.1:{port}"), status=fake.provider)
    again.start()  # the same port binds again at once
    again.stop()
    server.stop()  # a second stop is harmless


def test_connections_beyond_the_limit_are_refused_not_queued(fake: Scene) -> None:
    with WebServer(settings(), max_connections=1, status=fake.provider) as server:
        idle = socket.create_connection(server.address, timeout=5)  # holds the only slot
        time.sleep(0.05)  # let the server accept it (nothing to poll for from outside)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            request(server, path="/api/status")
        idle.close()
        wait_for(lambda: _ok(server), what="the slot to come back")


def _ok(server: WebServer) -> bool:
    try:
        return request(server, path="/api/status")[0] == 200
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return False
