"""One webhook attempt against a real HTTP server: headers, signature, what each answer means."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from email.utils import formatdate

import pytest

from daemon.notify.signing import sign, verify
from daemon.notify.targets import WebhookSender, version
from daemon.queue import Delivery
from tests.notify.conftest import load_targets
from tests.notify.server import LocalServer

NOW = 1_700_000_000.0


def webhook(url: str, **extra: object) -> WebhookSender:
    [config] = load_targets([{"webhook": url, **extra}])
    return WebhookSender(config)  # type: ignore[arg-type]


def delivery(body: bytes = b'{"event":"done","file":"a.mp3"}') -> Delivery:
    return Delivery.new("hook", "done", body, now=NOW, id="0123abcd")


def test_a_signed_post_carries_every_header(server: LocalServer) -> None:
    result = webhook(server.url, secret="s3cret").send(delivery(), NOW)
    assert result.outcome == "sent"
    [got] = server.receiver.requests
    assert got.body == b'{"event":"done","file":"a.mp3"}'
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == f"whisperd/{version()}"
    assert got.headers["X-Whisperd-Event"] == "done"
    assert got.headers["X-Whisperd-Delivery"] == "0123abcd"
    assert got.headers["X-Whisperd-Timestamp"] == str(int(NOW))
    signature = got.headers["X-Whisperd-Signature"]
    assert signature == sign("s3cret", int(NOW), got.body)
    assert verify("s3cret", signature, got.body, now=NOW + 10)


def test_the_signature_scheme_is_the_documented_one(server: LocalServer) -> None:
    """A receiver written from NOTES.md alone: HMAC-SHA256(secret, f"{t}." + body), hex."""
    import hashlib
    import hmac

    webhook(server.url, secret="s3cret").send(delivery(), NOW)
    [got] = server.receiver.requests
    fields = dict(part.split("=", 1) for part in got.headers["X-Whisperd-Signature"].split(","))
    expected = hmac.new(b"s3cret", fields["t"].encode() + b"." + got.body, hashlib.sha256)
    assert fields["t"] == got.headers["X-Whisperd-Timestamp"]
    assert fields["v1"] == expected.hexdigest()


def test_verify_refuses_forgeries_and_replays() -> None:
    body = b'{"x":1}'
    header = sign("s3cret", int(NOW), body)
    assert not verify("other", header, body, now=NOW)
    assert not verify("s3cret", header, body + b" ", now=NOW)
    assert not verify("s3cret", header, body, now=NOW + 301)
    assert not verify("s3cret", "v1=abc", body, now=NOW)
    assert verify("s3cret", header + ",v2=future", body, now=NOW)


def test_without_a_secret_nothing_is_signed(server: LocalServer) -> None:
    webhook(server.url).send(delivery(), NOW)
    [got] = server.receiver.requests
    assert "X-Whisperd-Signature" not in got.headers
    assert got.headers["X-Whisperd-Timestamp"] == str(int(NOW))


@pytest.mark.parametrize(
    ("answer", "outcome", "retry_after"),
    [
        (500, "retry", None),
        (502, "retry", None),
        (408, "retry", None),
        ((503, {"Retry-After": "7"}), "retry", 7.0),
        ((429, {"Retry-After": formatdate(NOW + 90, usegmt=True)}), "retry", 90.0),
        (404, "reject", None),
        (401, "reject", None),
        (410, "reject", None),
        ((301, {"Location": "/elsewhere"}), "reject", None),
        (204, "sent", None),
    ],
)
def test_what_each_answer_means(
    server_factory: Callable[..., LocalServer],
    answer: object,
    outcome: str,
    retry_after: float | None,
) -> None:
    server = server_factory(default=answer)
    result = webhook(server.url).send(delivery(), NOW)
    assert (result.outcome, result.retry_after) == (outcome, retry_after)
    assert len(server.receiver.requests) == 1, "no redirect is followed, nothing is repeated"


def test_a_redirect_says_what_to_fix(server_factory: Callable[..., LocalServer]) -> None:
    server = server_factory(default=(308, {"Location": "/new"}))
    result = webhook(server.url).send(delivery(), NOW)
    assert result.error == (
        "HTTP 308: redirects are not followed; configure the URL the webhook redirects to"
    )


def test_a_receiver_that_does_not_answer_in_time_is_retried(
    server_factory: Callable[..., LocalServer],
) -> None:
    server = server_factory(default=("sleep", 5))
    started = time.monotonic()
    result = webhook(server.url, timeout=0.3).send(delivery(), NOW)
    assert time.monotonic() - started < 2
    assert (result.outcome, result.error) == ("retry", "no answer within 0.3 s")


def test_nobody_listening_is_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    result = webhook(f"http://127.0.0.1:{port}/hook").send(delivery(), NOW)
    assert result.outcome == "retry" and result.error.startswith("cannot connect:")


def test_the_body_is_sent_byte_for_byte(server: LocalServer) -> None:
    body = json.dumps({"file": "caf\\xe9 ü.mp3"}, ensure_ascii=False).encode()
    webhook(server.url).send(delivery(body), NOW)
    assert server.receiver.requests[0].body == body
