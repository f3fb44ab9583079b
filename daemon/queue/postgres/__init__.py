"""The ledger on PostgreSQL: several whisperd services (nodes) share one queue.

:mod:`.store` (the ledger class, intake, meta), :mod:`.intake` (how a version enters),
:mod:`.transitions` (claims with leases, fenced outcomes), :mod:`.upkeep` (reclaims,
operator actions), :mod:`.housekeeping` (pruning, requeueing done files), :mod:`.deliveries`
(the notification queue: stored by every node, sent by the intake leader), :mod:`.nodes`
(joining, heartbeats, lease renewal, intake leadership), :mod:`.schema` (tables, counters,
versioned migrations, advisory lock keys) and :mod:`.connection` (one connection,
reopened after a drop). The status queries are the SQLite ledger's
(:mod:`daemon.queue.reports`), without its index hints. Reached only through
:func:`daemon.queue.open_ledger` and the :class:`~daemon.queue.interface.JobStore`
interface; needs psycopg 3 (``pip install 'whisperd[postgresql]'``), imported only when
this backend is chosen.
"""

from daemon.queue.postgres.store import PgLedger

__all__ = ["PgLedger"]
