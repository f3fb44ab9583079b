"""A real HTTP server on 127.0.0.1 that records every request and answers from a script.

    server = RecordingServer(); server.start()
    server.script("POST", "/Library/Media/Updated", [500, "hang", 204])  # then the default
    ... server.calls  # [Call(method, path, query, headers, body), ...]
    server.stop()

A scripted answer is a status code, ``"hang"`` (sleep ``hang_seconds`` before answering 204,
to make the client time out) or ``(status, content_type, body)``. Unscripted requests get
the route's default (``server.route(...)``) or 204.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = int | str | tuple[int, str, bytes]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RecordingServer:
    def __init__(self, hang_seconds: float = 1.0) -> None:
        self.hang_seconds = hang_seconds
        self.calls: list[Call] = []
        self._scripts: dict[tuple[str, str], deque[Answer]] = defaultdict(deque)
        self._routes: dict[tuple[str, str], Answer] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def script(self, method: str, path: str, answers: list[Answer]) -> None:
        with self._lock:
            self._scripts[(method, path)].extend(answers)

    def route(self, method: str, path: str, answer: Answer) -> None:
        with self._lock:
            self._routes[(method, path)] = answer

    def calls_to(self, method: str, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.path == path]

    def _answer(self, call: Call) -> Answer:
        with self._lock:
            self.calls.append(call)
            queued = self._scripts.get((call.method, call.path))
            if queued:
                return queued.popleft()
            return self._routes.get((call.method, call.path), 204)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urllib.parse.urlsplit(self.path)
                call = Call(
                    self.command,
                    parts.path,
                    urllib.parse.parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                answer = server._answer(call)
                if answer == "hang":
                    time.sleep(server.hang_seconds)
                    answer = 204
                status, ctype, body = (
                    answer if isinstance(answer, tuple) else (int(answer), "text/plain", b"")
                )
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout) and closed the socket
                    pass

            do_GET = do_POST = _serve

        return Handler
