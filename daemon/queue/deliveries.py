"""The durable notification queue, in the ledger: every notification is stored before it is sent.

One row per (event, target), a *delivery* (table ``deliveries``, schema 3). States::

    pending ──2xx / Apprise True──▶ sent
       │ ▲
       │ └──retryable failure: attempts + 1, next_at = later
       └──rejected (4xx), or still failing after give_up_after──▶ given_up

A restart finds the pending rows and sends them: a send that was in flight when the process
stopped is sent again (at-least-once; receivers deduplicate on the delivery id).

:class:`DeliveryStore` is what :mod:`daemon.notify` uses; :class:`Deliveries` implements it
on the ledger's own connection and lock (``ledger.deliveries``), so a notification is
committed like any job transition (WAL, synchronous=FULL). Every write is one ``BEGIN
IMMEDIATE`` transaction; nothing holds the lock while sending. The PostgreSQL ledger uses
the same class on its own connection (``translate``: its placeholders; table ``deliveries``
in its schema step 3), so every node sends what any node stored.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

_COLUMNS = "id, target, event, body, state, attempts, created_at, next_at, last_error"


@dataclass(frozen=True)
class Delivery:
    """One event for one target."""

    id: str
    target: str
    event: str
    body: bytes
    created_at: float
    next_at: float
    attempts: int = 0
    state: str = "pending"
    last_error: str | None = None

    @classmethod
    def new(cls, target: str, event: str, body: bytes, now: float, id: str = "") -> Delivery:
        """A pending delivery, due at once (``id``: a fresh uuid4 hex unless given)."""
        return cls(id or uuid.uuid4().hex, target, event, body, created_at=now, next_at=now)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Delivery:
        """From a row selected as ``_COLUMNS``."""
        return cls(
            id=row[0], target=row[1], event=row[2], body=bytes(row[3]), state=row[4],
            attempts=row[5], created_at=row[6], next_at=row[7], last_error=row[8],
        )  # fmt: skip


class DeliveryStore(Protocol):
    """Where deliveries wait; every method is a short local operation, safe from any thread."""

    def enqueue(self, deliveries: Iterable[Delivery]) -> None: ...
    def due(self, now: float, *, target: str | None = None, limit: int = 100) -> list[Delivery]: ...
    def mark_sent(self, delivery_id: str, now: float) -> None: ...
    def mark_retry(self, delivery_id: str, next_at: float, error: str, now: float) -> None: ...
    def mark_given_up(
        self, delivery_id: str, error: str, now: float, *, attempted: bool = True
    ) -> None: ...
    def next_due(self, *, target: str | None = None) -> float | None: ...
    def pending(self, *, target: str | None = None) -> int: ...
    def pending_targets(self) -> dict[str, int]: ...
    def get(self, delivery_id: str) -> Delivery | None: ...
    def counts(self) -> dict[str, int]: ...
    def prune(self, before: float) -> int: ...


class _Host(Protocol):
    def _write(self, op: str) -> AbstractContextManager[sqlite3.Connection]: ...
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...


class Deliveries:
    """:class:`DeliveryStore` on a ledger's connection (its ``_write`` and ``_read``)."""

    def __init__(self, host: _Host, translate: Callable[[str], str] = str) -> None:
        self._host = host
        self._sql = translate  # the writes' ``?`` placeholders in the host's dialect

    # --- writes ---

    def enqueue(self, deliveries: Iterable[Delivery]) -> None:
        """Store new pending deliveries, all or none."""
        rows = [(d.id, d.target, d.event, d.body, d.created_at, d.next_at, d.created_at)
                for d in deliveries]  # fmt: skip
        if not rows:
            return
        with self._host._write("store a notification") as conn:
            conn.cursor().executemany(
                self._sql(
                    "INSERT INTO deliveries (id, target, event, body, created_at, next_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                rows,
            )

    def mark_sent(self, delivery_id: str, now: float) -> None:
        """The target accepted it."""
        self._finish(delivery_id, "sent", None, now, attempted=True)

    def mark_retry(self, delivery_id: str, next_at: float, error: str, now: float) -> None:
        """An attempt failed; try again at ``next_at``."""
        with self._host._write("reschedule a notification") as conn:
            conn.execute(
                self._sql(
                    "UPDATE deliveries SET attempts = attempts + 1, next_at = ?, "
                    "last_error = ?, updated_at = ? WHERE id = ? AND state = 'pending'"
                ),
                (next_at, error, now, delivery_id),
            )

    def mark_given_up(
        self, delivery_id: str, error: str, now: float, *, attempted: bool = True
    ) -> None:
        """Never try again (rejected, too old, or its target is no longer configured)."""
        self._finish(delivery_id, "given_up", error, now, attempted=attempted)

    def prune(self, before: float) -> int:
        """Delete sent and given-up deliveries last updated before ``before``; the count."""
        with self._host._write("prune old notifications") as conn:
            return conn.execute(
                self._sql("DELETE FROM deliveries WHERE state <> 'pending' AND updated_at < ?"),
                (before,),
            ).rowcount

    def _finish(
        self, delivery_id: str, state: str, error: str | None, now: float, *, attempted: bool
    ) -> None:
        with self._host._write(f"mark a notification {state}") as conn:
            conn.execute(
                self._sql(
                    "UPDATE deliveries SET state = ?, attempts = attempts + ?, "
                    "last_error = coalesce(?, last_error), updated_at = ? "
                    "WHERE id = ? AND state = 'pending'"
                ),
                (state, int(attempted), error, now, delivery_id),
            )

    # --- reads ---

    def due(self, now: float, *, target: str | None = None, limit: int = 100) -> list[Delivery]:
        """Pending deliveries with ``next_at <= now``, oldest ``next_at`` first."""
        where, params = _where(target)
        rows = self._host._read(
            f"SELECT {_COLUMNS} FROM deliveries WHERE {where} AND next_at <= ? "
            "ORDER BY next_at, seq LIMIT ?",
            (*params, now, limit),
        )
        return [Delivery.from_row(r) for r in rows]

    def next_due(self, *, target: str | None = None) -> float | None:
        """The smallest ``next_at`` of the pending deliveries; None when none is pending."""
        where, params = _where(target)
        value = self._host._read(f"SELECT min(next_at) FROM deliveries WHERE {where}", params)
        return None if value[0][0] is None else float(value[0][0])

    def pending(self, *, target: str | None = None) -> int:
        """How many deliveries are pending."""
        where, params = _where(target)
        return int(self._host._read(f"SELECT count(*) FROM deliveries WHERE {where}", params)[0][0])

    def pending_targets(self) -> dict[str, int]:
        """Pending deliveries per target key."""
        rows = self._host._read(
            "SELECT target, count(*) FROM deliveries WHERE state = 'pending' GROUP BY target"
        )
        return {r[0]: int(r[1]) for r in rows}

    def get(self, delivery_id: str) -> Delivery | None:
        """One delivery, whatever its state."""
        rows = self._host._read(f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,))
        return Delivery.from_row(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        """Deliveries per state (every state present)."""
        counts = dict.fromkeys(("pending", "sent", "given_up"), 0)
        for state, n in self._host._read("SELECT state, count(*) FROM deliveries GROUP BY state"):
            counts[state] = int(n)
        return counts


def _where(target: str | None) -> tuple[str, tuple[Any, ...]]:
    if target is None:
        return "state = 'pending'", ()
    return "state = 'pending' AND target = ?", (target,)
