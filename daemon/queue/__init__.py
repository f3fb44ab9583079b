"""The queue: the durable job ledger behind a small interface, scheduling, the retry policy.

Owns every job's state from the moment a version of a file is enqueued until it is done,
failed, superseded or gone: :mod:`.interface` (what the rest of whisperd may call),
:mod:`.factory` (which backend a configuration means), :mod:`.store` (the SQLite backend),
:mod:`.transitions` (its worker's side: claim, the two-phase commit, outcomes, recovery),
:mod:`.versions` (how a version enters), :mod:`.housekeeping` (pruning, vacuum, requeueing
done files), :mod:`.deliveries` (the notification queue, stored beside the jobs),
:mod:`.schema` (tables, migrations, connections), :mod:`.postgres` (the PostgreSQL backend,
for several servers), :mod:`.nodes` (the servers sharing a ledger), :mod:`.scheduling`
(which job runs next), :mod:`.policy` (attempts, backoff, transient vs permanent),
:mod:`.reports` (read-only queries) and :mod:`.job` (the row type).

May import: :mod:`daemon.config`, :mod:`daemon.version`, :mod:`daemon.errors`.
"""

from daemon.queue.deliveries import Deliveries, Delivery, DeliveryStore
from daemon.queue.factory import location, node_name, open_ledger
from daemon.queue.interface import JobStore
from daemon.queue.job import FINAL_STATES, KNOWN_STATES, STATES, Brief, Job
from daemon.queue.nodes import NodeInfo, NodeStatus
from daemon.queue.policy import INTERRUPTED, TRANSIENT_MAX_ATTEMPTS, RetryPolicy
from daemon.queue.schema import FILENAME, SCHEMA_VERSION
from daemon.queue.store import Ledger
from daemon.queue.transitions import Recovery, crash_message
from daemon.queue.versions import NewVersion

__all__ = [
    "FILENAME",
    "FINAL_STATES",
    "INTERRUPTED",
    "KNOWN_STATES",
    "SCHEMA_VERSION",
    "STATES",
    "TRANSIENT_MAX_ATTEMPTS",
    "Brief",
    "Deliveries",
    "Delivery",
    "DeliveryStore",
    "Job",
    "JobStore",
    "Ledger",
    "NewVersion",
    "NodeInfo",
    "NodeStatus",
    "Recovery",
    "RetryPolicy",
    "crash_message",
    "location",
    "node_name",
    "open_ledger",
]
