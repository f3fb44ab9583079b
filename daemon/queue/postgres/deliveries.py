"""The notification queue on a shared ledger: stored by every node, sent by one.

Every node stores the notifications of its own jobs in the shared ``deliveries`` table
(schema step 3), with the SQLite ledger's :class:`~daemon.queue.deliveries.Deliveries`.
Were every node to send what is due, each notification would go out once per node, and a
node without one of the targets in its configuration would give up the others' deliveries
for it as orphans. So only the node that leads intake (:meth:`PgNodes.lead`, the same lock
as the inbox scan) sees deliveries due, their next due time and the targets pending; on
the others :meth:`due` is empty and their lanes wait. When the leader dies, the next leader
sends what it left pending (at-least-once, as after a restart).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.queue.deliveries import Deliveries, Delivery
from daemon.queue.postgres.connection import sql


class SharedDeliveries(Deliveries):
    """:class:`Deliveries` on the PostgreSQL ledger ``host``; sending only where ``lead()``."""

    def __init__(self, host: Any, lead: Callable[[], bool]) -> None:
        super().__init__(host, translate=sql)
        self._lead = lead

    def due(self, now: float, *, target: str | None = None, limit: int = 100) -> list[Delivery]:
        """Pending deliveries due at ``now`` (see the class); none on a node that does not lead."""
        return super().due(now, target=target, limit=limit) if self._lead() else []

    def next_due(self, *, target: str | None = None) -> float | None:
        """When the next delivery is due; None on a node that does not lead (nothing to do)."""
        return super().next_due(target=target) if self._lead() else None

    def pending_targets(self) -> dict[str, int]:
        """Pending deliveries per target; none on a node that does not lead (no orphans)."""
        return super().pending_targets() if self._lead() else {}
