"""Sending one stored delivery to one target: a webhook POST, or an Apprise notification.

A target never raises and never blocks longer than about its ``timeout``; it answers a
:class:`SendResult`: ``sent``, ``retry`` (maybe later, with the server's Retry-After) or
``reject`` (trying again cannot help). Scheduling retries is the sender's job.

Webhook answers: 2xx sent; 408, 429, 5xx, timeouts and connection errors retry; redirects
are not followed (a POST turned into a GET loses its body) and, like every other 4xx,
reject. Apprise's ``notify()`` only says whether it worked: False retries. Apprise runs in
a helper thread joined with a deadline, so a plugin that hangs costs one abandoned thread,
not the sender; while that thread still hangs, later sends to the target retry without
starting another.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from daemon import __version__
from daemon.config.operate import AppriseTarget, NotifyTarget, WebhookTarget
from daemon.notify.documents import render_text
from daemon.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from daemon.queue import Delivery

RETRYABLE_STATUS = frozenset({408, 429})
MAX_RESPONSE_BYTES = 65536
APPRISE_GRACE = 2.0  # seconds past Apprise's own call timeout before the guard gives up


def version() -> str:
    """whisperd's version, for the User-Agent and the documents."""
    return __version__


@dataclass(frozen=True)
class SendResult:
    """The outcome of one attempt."""

    outcome: Literal["sent", "retry", "reject"]
    error: str = ""
    retry_after: float | None = None  # seconds, from the server's Retry-After


class Target(Protocol):
    """One configured destination."""

    config: NotifyTarget

    def send(self, delivery: Delivery, now: float) -> SendResult:
        """Try once; never raises."""


def build_target(config: NotifyTarget, user_agent: str | None = None) -> Target:
    """The sender for a validated target configuration."""
    if isinstance(config, WebhookTarget):
        return WebhookSender(config, user_agent)
    return AppriseSender(config)


# --- webhook ------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


class WebhookSender:
    """POST the stored JSON document, signed when the target has a secret."""

    def __init__(self, config: WebhookTarget, user_agent: str | None = None) -> None:
        self.config = config
        self.user_agent = user_agent or f"whisperd/{version()}"
        self._opener = urllib.request.build_opener(_NoRedirect)

    def headers(self, delivery: Delivery, now: float) -> dict[str, str]:
        """The request headers for ``delivery`` sent at ``now``."""
        timestamp = int(now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            "X-Whisperd-Event": delivery.event,
            "X-Whisperd-Delivery": delivery.id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, delivery.body)
        return headers

    def send(self, delivery: Delivery, now: float) -> SendResult:
        """POST once; never raises."""
        request = urllib.request.Request(
            self.config.webhook,
            data=delivery.body,
            method="POST",
            headers=self.headers(delivery, now),
        )
        timeout = self.config.timeout
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(MAX_RESPONSE_BYTES)
                return SendResult("sent")
        except urllib.error.HTTPError as err:
            with err:
                return classify(err.code, err.headers.get("Retry-After"), now)
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError | socket.timeout):
                return SendResult("retry", f"no answer within {timeout:g} s")
            return SendResult("retry", f"cannot connect: {err.reason}")
        except TimeoutError:
            return SendResult("retry", f"no answer within {timeout:g} s")
        except (http.client.HTTPException, OSError, ValueError) as err:
            return SendResult("retry", f"{type(err).__name__}: {err}")


def classify(status: int, retry_after: str | None, now: float) -> SendResult:
    """What an HTTP status means for a delivery (2xx is handled by the caller)."""
    if 200 <= status < 300:
        return SendResult("sent")
    if status >= 500 or status in RETRYABLE_STATUS:
        return SendResult("retry", f"HTTP {status}", parse_retry_after(retry_after, now))
    if 300 <= status < 400:
        return SendResult(
            "reject",
            f"HTTP {status}: redirects are not followed; "
            "configure the URL the webhook redirects to",
        )
    return SendResult("reject", f"HTTP {status}: the receiver refused the request")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


# --- apprise ------------------------------------------------------------------------------


class AppriseSender:
    """Title and body through one Apprise URL, under a deadline."""

    #: Pass ``timeout`` to Apprise (≥ 2 ends a slow call itself); the guard thread stays.
    use_apprise_timeout = True
    grace = APPRISE_GRACE

    def __init__(self, config: AppriseTarget) -> None:
        self.config = config
        self._hung: threading.Thread | None = None

    def send(self, delivery: Delivery, now: float) -> SendResult:
        """Notify once; never raises, returns within ``timeout`` + a grace."""
        if self._hung is not None and self._hung.is_alive():
            return SendResult("retry", "the previous Apprise call has not returned yet")
        self._hung = None
        try:
            title, body, kind = render_text(json.loads(delivery.body))
        except ValueError as err:
            return SendResult("reject", f"stored document is not JSON: {err}")
        box: dict[str, Any] = {}
        thread = threading.Thread(
            target=self._call,
            args=(title, body, kind, box),
            daemon=True,
            name=f"apprise-{self.config.label}",
        )
        thread.start()
        thread.join(self.config.timeout + self.grace)
        if thread.is_alive():
            self._hung = thread
            return SendResult("retry", f"Apprise did not return within {self.config.timeout:g} s")
        if "error" in box:
            return SendResult("retry", box["error"])
        return SendResult("sent") if box.get("ok") else SendResult("retry", box.get("why", ""))

    def _call(self, title: str, body: str, kind: str, box: dict[str, Any]) -> None:
        """Runs in the helper thread; reports into ``box``."""
        import apprise

        try:
            client = apprise.Apprise()
            if not client.add(self.config.apprise):
                box["error"] = "Apprise no longer accepts this URL"
                return
            started = time.monotonic()
            extra = _timeout_kwarg(self.config.timeout) if self.use_apprise_timeout else {}
            result = client.notify(
                body=body, title=title, notify_type=apprise.NotifyType(kind), **extra
            )
            box["ok"] = bool(result)
            box["why"] = _apprise_reason(result, time.monotonic() - started)
        except Exception as err:  # a plugin bug must not kill the sender
            box["error"] = f"Apprise raised {type(err).__name__}: {err}"


def _timeout_kwarg(timeout: float) -> dict[str, float]:
    """Apprise ≥ 2 takes a whole-call ``timeout``; older versions do not."""
    import inspect

    import apprise

    params = inspect.signature(apprise.Apprise.notify).parameters
    return {"timeout": timeout} if "timeout" in params else {}


def _apprise_reason(result: Any, seconds: float) -> str:
    """The last warning Apprise recorded for a failed call (Apprise ≥ 2), else a generic line."""
    logs = getattr(result, "logs", None)
    if callable(logs):
        messages = [str(getattr(e, "message", e)) for e in logs()]
        if messages:
            return f"Apprise: {messages[-1]}"
    return f"Apprise reported a failure after {seconds:.1f} s"
