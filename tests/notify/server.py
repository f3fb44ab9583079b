"""A real HTTP receiver on 127.0.0.1 for the tests: scripted answers, every request recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A behaviour per request: an int status, ("sleep", seconds) to answer 200 only after that,
# or (status, {"Header": "value"}) for a status with headers.
Behaviour = Any


@dataclass
class Received:
    """One request as the receiver saw it."""

    at: float  # time.monotonic() on arrival
    path: str
    headers: dict[str, str]
    body: bytes
    behaviour: Behaviour
    accepted: bool = False  # answered 2xx (after any sleep)


@dataclass
class Receiver:
    """State shared by the handler threads: the script and what arrived."""

    script: list[Behaviour] = field(default_factory=list)
    default: Behaviour = 200
    requests: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)

    def next_behaviour(self) -> Behaviour:
        with self.cond:
            return self.script.pop(0) if self.script else self.default

    def record(self, item: Received) -> None:
        with self.cond:
            self.requests.append(item)
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10) -> bool:
        """Wait until ``predicate(requests)`` holds; False on timeout."""
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.requests), timeout)

    def accepted(self) -> list[Received]:
        with self.cond:
            return [r for r in self.requests if r.accepted]

    def changed(self) -> None:
        with self.cond:
            self.cond.notify_all()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            behaviour = receiver.next_behaviour()
            item = Received(
                time.monotonic(), self.path, dict(self.headers.items()), body, behaviour
            )
            receiver.record(item)
            status, headers = behaviour if isinstance(behaviour, tuple) else (behaviour, {})
            if status == "sleep":
                receiver.release.wait(headers)  # headers holds the seconds here
                status, headers = 200, {}
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                return  # the client gave up (timeout): nothing was accepted
            item.accepted = 200 <= status < 300
            receiver.changed()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a thread; ``url`` is its address."""

    def __init__(self, script: list[Behaviour] | None = None, default: Behaviour = 200) -> None:
        self.receiver = Receiver(script=list(script or []), default=default)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.receiver))
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.receiver.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
