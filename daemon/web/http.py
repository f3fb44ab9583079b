"""The read-only HTTP listener: ``/metrics``, ``/api/status`` and the status page.

Owns :class:`WebServer` (bind, serve from a thread, stop), :class:`StatusCache` and
:class:`ListenError`. Standard library only (``http.server``). Routes::

    GET /              the status page (static/page.html, its CSS and JS)
    GET /metrics       Prometheus text format (OpenMetrics when the scraper asks for it)
    GET /api/status    the public status JSON (:func:`daemon.web.public.public_report`);
                       ``?files=1`` adds every file of the ledger (large)

GET and HEAD only (405 otherwise), 404 elsewhere. With ``auth`` set every request needs
HTTP basic auth (401 with ``WWW-Authenticate``); the pair is compared in constant time.
The status provider (:func:`daemon.web.report.collect`) runs at most once per ``status_ttl``
however many clients poll, and never concurrently; a listener that cannot bind raises
:class:`ListenError` with one line.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from daemon.config.operate import BasicAuthSettings, MetricsSettings, is_loopback, parse_listen
from daemon.errors import ServiceError
from daemon.text import display
from daemon.web.metrics import Metrics
from daemon.web.public import encode_json, public_report, redact_paths

log = structlog.get_logger(__name__)

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
POLL_INTERVAL = 0.5  # seconds: how soon serve_forever notices stop()
CLIENT_TIMEOUT = 10.0  # seconds a client may take to send its request
# The status is reused for at least this many times its build time: the page costs at most
# 1 % of a core however many people watch it (measured: a 0.5 s build at 100,000 files done
# today, every 5 s, was 10 % of a core; the idle target is 2 %).
COST_FACTOR = 100.0
STATIC = {  # URL path -> (file in web/static, content type)
    "/": ("page.html", "text/html; charset=utf-8"),
    "/static/page.css": ("page.css", "text/css; charset=utf-8"),
    "/static/page.js": ("page.js", "text/javascript; charset=utf-8"),
}
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_ERRNO_HINTS = {
    errno.EADDRINUSE: "the address is already in use (another whisperd or exporter?); "
    "choose another port in metrics.listen",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "this machine has no such address",
}


class ListenError(ServiceError):
    """The listener cannot bind its address (in use, no permission, unknown host)."""


@dataclass(frozen=True)
class Response:
    """What a route answers."""

    status: int
    body: bytes
    content_type: str = TEXT
    headers: Mapping[str, str] = field(default_factory=dict)


class StatusCache:
    """The public status JSON, rebuilt from ``provider(files)`` at most once per ``ttl`` s.

    Requests arriving while it is rebuilt wait for that result instead of calling the
    provider again. The ttl stretches to :data:`COST_FACTOR` times the last rebuild's CPU
    time (this thread's, ``cost``: a busy machine stretches the wall time, not the work), so
    a large ledger is never busy more than 1 % of the time for the page.
    A failing provider gives a 503 with a one-line, path-free reason, cached like a
    success so a broken ledger is not hammered either. With and without ``files`` are
    cached apart (``files`` reads the whole ledger).
    """

    def __init__(
        self,
        provider: Callable[[bool], Mapping[str, Any]],
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        cost: Callable[[], float] = time.thread_time,
    ) -> None:
        self._provider, self._ttl, self._clock, self._cost = provider, ttl, clock, cost
        self._lock = threading.Lock()
        self._cached: dict[bool, tuple[float, float, int, bytes]] = {}  # at, valid, status, body

    def get(self, include_files: bool = False) -> tuple[int, bytes]:
        """``(http status, JSON bytes)``; ``include_files`` adds every file of the ledger."""
        with self._lock:
            cached = self._cached.get(include_files)
            if cached is None or self._clock() - cached[0] >= cached[1]:
                cached = self._cached[include_files] = self._build(include_files)
            return cached[2], cached[3]

    def _build(self, include_files: bool) -> tuple[float, float, int, bytes]:
        spent = self._cost()
        try:
            report = self._provider(include_files)
            status, body = 200, encode_json(public_report(report, include_files=include_files))
        except Exception as err:  # the page reports it; the service goes on
            log.warning("status for http failed", error=str(err), kind=type(err).__name__)
            first = str(err).splitlines()[0] if str(err) else ""
            reason = display(redact_paths(first, []))
            status = 503
            body = encode_json({"error": f"status unavailable: {type(err).__name__}: {reason}"})
        spent = self._cost() - spent
        return self._clock(), max(self._ttl, COST_FACTOR * spent), status, body


def _flag(query: str, name: str) -> bool:
    """True if ``name=1`` (or true/yes) is in the query string."""
    values = parse_qs(query).get(name, [])
    return bool(values) and values[-1].lower() in ("1", "true", "yes")


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def check_basic_auth(header: str | None, auth: BasicAuthSettings) -> bool:
    """True if ``header`` (an Authorization value) carries ``auth``'s user and password;
    both are compared in constant time (as hashes, so their lengths do not leak either)."""
    if not header:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    user_ok = hmac.compare_digest(_digest(user), _digest(auth.user.encode()))
    password_ok = hmac.compare_digest(
        _digest(password), _digest(auth.password.get_secret_value().encode())
    )
    return bool(sep) & user_ok & password_ok


class _App:
    """Routes and their data, shared by every handler thread."""

    def __init__(
        self, settings: MetricsSettings, metrics: Metrics | None, status: StatusCache | None
    ) -> None:
        self.settings, self.metrics, self.status = settings, metrics, status
        folder = resources.files("daemon.web") / "static"
        self.static = {url: (folder / name).read_bytes() for url, (name, _) in STATIC.items()}

    def respond(self, target: str, headers: Mapping[str, str]) -> Response:
        """The response to ``GET target`` (path and query) with these request headers."""
        parts = urlsplit(target)
        path, query = parts.path, parts.query
        auth = self.settings.auth
        if auth is not None and not check_basic_auth(headers.get("Authorization"), auth):
            challenge = {"WWW-Authenticate": 'Basic realm="whisperd", charset="UTF-8"'}
            return Response(401, b"authentication required\n", TEXT, challenge)
        if path == "/metrics" and self.metrics is not None:
            body, content_type = self.metrics.render_for(headers.get("Accept"))
            return Response(200, body, content_type, {"Cache-Control": "no-store"})
        if path == "/api/status" and self.status is not None:
            status, body = self.status.get(include_files=_flag(query, "files"))
            return Response(status, body, JSON, {"Cache-Control": "no-store"})
        if path in STATIC and self.status is not None:
            extra = {"Cache-Control": "no-cache"}
            if path == "/":
                extra["Content-Security-Policy"] = PAGE_POLICY
            return Response(200, self.static[path], STATIC[path][1], extra)
        return Response(404, b"not found\n")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CLIENT_TIMEOUT

    def version_string(self) -> str:
        """The Server header: no Python version for the curious."""
        return "whisperd"

    def do_GET(self) -> None:
        self._serve(include_body=True)

    def do_HEAD(self) -> None:
        self._serve(include_body=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method: POST, PUT, DELETE, OPTIONS, ...
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._send(Response(405, b"method not allowed\n", TEXT, {"Allow": "GET, HEAD"}), True)

    def _serve(self, include_body: bool) -> None:
        try:
            response = self.server.app.respond(self.path, self.headers)
        except Exception:
            log.exception("http request failed", path=display(self.path))
            response = Response(500, b"internal error\n")
        self._send(response, include_body)

    def _send(self, response: Response, include_body: bool) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in {**COMMON_HEADERS, **response.headers}.items():
                self.send_header(name, value)
            self.end_headers()
            if include_body:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http", client=self.client_address[0], line=display(format % args))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple, family: int, app: _App, max_connections: int) -> None:
        self.address_family = family
        self.app = app
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (slow on some networks)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):  # too many at once: refuse, stay light
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _bind(listen: str, app: _App, max_connections: int) -> _Server:
    try:
        host, port = parse_listen(listen)
    except ValueError as err:
        raise ListenError(f"metrics.listen: {err}") from None
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ListenError(f"cannot listen on {listen}: unknown host ({err.strerror})") from None
    try:
        return _Server(address, family, app, max_connections)
    except OSError as err:
        reason = _ERRNO_HINTS.get(err.errno or 0, err.strerror or str(err))
        raise ListenError(f"cannot listen on {listen}: {reason}") from None


class WebServer:
    """The listener: ``start()`` binds and serves from a daemon thread, ``stop()`` ends it."""

    def __init__(
        self,
        settings: MetricsSettings,
        *,
        metrics: Metrics | None = None,
        status: Callable[[bool], Mapping[str, Any]] | None = None,
        status_ttl: float = 1.0,
        max_connections: int = 32,
    ) -> None:
        """``status(files)``: the ``status --json`` report (called at most once a ttl)."""
        self.settings = settings
        self.max_connections = max_connections
        cache = StatusCache(status, status_ttl) if status is not None else None
        self._app = _App(settings, metrics, cache)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; :class:`ListenError` (one line) if the address is unusable."""
        if self._server is not None:
            return
        server = _bind(self.settings.listen, self._app, self.max_connections)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="whisperd-http",
            daemon=True,
        )
        self._thread.start()
        host = self.address[0]
        if self.settings.auth is None and not is_loopback(host):
            log.warning(
                "http listener reachable from the network without metrics.auth", url=self.url
            )
        log.info("http listening", url=self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (within about POLL_INTERVAL), close the socket, join the thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()  # 1. serve_forever returns; in-flight requests finish on their own
        server.server_close()  # 2. the port is free again
        thread.join(timeout)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        """Whether the listener is bound and serving."""
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (the real port when the setting said 0)."""
        if self._server is None:
            raise RuntimeError("the listener is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``http://host:port/`` of the bound address (IPv6 in brackets)."""
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
