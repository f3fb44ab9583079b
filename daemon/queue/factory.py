"""Which ledger a configuration means: :func:`open_ledger` chooses by ``ledger.backend``.

SQLite (the default) lives in ``<state_dir>/ledger.sqlite3`` and needs nothing else;
PostgreSQL (:mod:`daemon.queue.postgres`) is imported only when chosen, so a single server
never loads psycopg. Either is used only through :class:`~daemon.queue.interface.JobStore`.
"""

from __future__ import annotations

import socket
from pathlib import Path

from daemon.config import Config
from daemon.errors import LedgerError
from daemon.queue.interface import JobStore
from daemon.queue.schema import FILENAME
from daemon.queue.store import open_sqlite


def node_name(cfg: Config) -> str:
    """This server's name in a shared ledger: ``node.name``, else the host name."""
    return cfg.node.name or socket.gethostname().split(".")[0] or "whisperd"


def open_ledger(where: Config | Path, *, readonly: bool = False) -> JobStore:
    """The ledger a configuration names (a bare state_dir path: its SQLite ledger).

    ``readonly``: for reports (``whisperd status``); SQLite opens the file read-only, and
    PostgreSQL neither creates nor migrates the schema.
    """
    if not isinstance(where, Config):
        return open_sqlite(Path(where), readonly=readonly)
    if where.ledger.backend != "postgresql":
        return open_sqlite(where.state_dir, readonly=readonly)
    try:
        from daemon.queue.postgres import PgLedger
    except ImportError as exc:
        raise LedgerError(
            f"the postgresql ledger needs psycopg 3, which cannot be imported ({exc})",
            "pip install 'whisperd[postgresql]'",
        ) from None
    assert where.ledger.dsn is not None  # the loader resolved it, or refused the config
    return PgLedger(where.ledger.dsn, node=node_name(where),
                    lease_seconds=where.ledger.lease_seconds, readonly=readonly)  # fmt: skip


def location(cfg: Config) -> str:
    """Where the configured ledger is, for people (never a password)."""
    if cfg.ledger.backend != "postgresql" or not cfg.ledger.dsn:
        return str(cfg.state_dir / FILENAME)
    try:
        from daemon.queue.postgres.connection import describe
    except ImportError:
        return "postgresql (psycopg is not installed)"
    return f"postgresql {describe(cfg.ledger.dsn)}"
