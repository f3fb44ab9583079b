"""The services (nodes) sharing a ledger, as the ledger records and reports them.

With SQLite there is one node and nothing to record; with PostgreSQL each service joins
under its ``node.name`` (:meth:`~daemon.queue.interface.JobStore.join`), renews its leases
and its heartbeat, and ``whisperd status`` lists every node (:class:`NodeStatus`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from daemon import __version__


@dataclass(frozen=True)
class NodeInfo:
    """What a service says of itself when it joins."""

    name: str
    workers: tuple[str, ...]  # devices
    models: tuple[str, ...] | None = None  # the only models it serves; None: any
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = __version__


@dataclass(frozen=True)
class NodeStatus:
    """A node as ``whisperd status`` shows it (times by the database's clock)."""

    name: str
    host: str
    pid: int
    version: str
    workers: tuple[str, ...]
    models: tuple[str, ...] | None
    started_at: float
    heartbeat_at: float
    heartbeat_age: float  # seconds since its last heartbeat
    alive: bool  # a heartbeat within the lease time
    leader: bool  # it scans the inbox
    running: int  # jobs it holds a valid lease on
