"""Webhook signatures: HMAC-SHA256 over the timestamp and the body (the Stripe scheme).

With a ``secret`` configured, every request carries::

    X-Whisperd-Timestamp: 1714564800
    X-Whisperd-Signature: t=1714564800,v1=<hex>

where ``<hex> = HMAC_SHA256(key=secret (UTF-8), msg=b"1714564800." + body)`` in lowercase
hex, ``body`` being the exact request bytes. A receiver recomputes it over the raw body (not
a re-serialised JSON), compares in constant time, and rejects timestamps too far from its
clock (replays). :func:`verify` does all three; a later scheme would add ``v2=`` beside
``v1=``, so receivers should ignore keys they do not know.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Whisperd-Signature"
TIMESTAMP_HEADER = "X-Whisperd-Timestamp"
DEFAULT_TOLERANCE = 300.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``b"<timestamp>." + body`` with ``secret``."""
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Whisperd-Signature header value: ``t=<timestamp>,v1=<hex>``."""
    return f"t={int(timestamp)},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance`` s."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
