"""``whisperd ledger migrate [--to DSN]``: move this server's SQLite ledger to PostgreSQL.

The first step from one server to several (README, "Several servers"): stop the service,
copy its ledger into an empty PostgreSQL database, then point every server's configuration
at that database (``ledger: {backend: postgresql, ...}``). The target is ``--to``, else the
configured dsn (``ledger.dsn``, ``ledger.dsn_file`` or ``$WHISPERD_LEDGER_DSN``, as for the
service). The service must be stopped: the state_dir lock is held during the copy.
"""

from __future__ import annotations

import os
import sys

from daemon.config import DSN_VAR, Config
from daemon.errors import AlreadyRunningError, LedgerError
from daemon.lock import StateLock
from daemon.queue import FILENAME, STATES, Ledger
from daemon.queue.transfer import copy_to_postgresql


def migrate(cfg: Config, to: str | None) -> int:
    """Copy the SQLite ledger of ``cfg.state_dir`` into the database ``to``; exit status."""
    dsn = to or (cfg.ledger.dsn if cfg.ledger.backend == "postgresql" else None)
    dsn = dsn or os.environ.get(DSN_VAR) or None
    if not dsn:
        print(f"whisperd ledger migrate: name the database with --to DSN (or set ${DSN_VAR})",
              file=sys.stderr)  # fmt: skip
        return 2
    source_file = cfg.state_dir / FILENAME
    if not source_file.is_file():
        raise LedgerError(f"{source_file}: no SQLite ledger to copy",
                          "run this on the server whose state_dir holds it")  # fmt: skip
    lock = StateLock(cfg.state_dir)
    try:
        lock.acquire()
    except AlreadyRunningError as err:
        raise LedgerError(f"{err.message}: stop it before copying its ledger") from None
    try:
        with Ledger(source_file) as source:
            before = source.counts()
            counts = copy_to_postgresql(source, dsn)
    finally:
        lock.release()
    copied = sum(counts.values())
    if copied != sum(before.values()):
        raise LedgerError(f"copied {copied} jobs of {sum(before.values())}; the copy is not whole")
    shown = ", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s))
    print(f"copied {copied} job{'s' if copied != 1 else ''} ({shown or 'none'}) from "
          f"{source_file} to the PostgreSQL ledger")  # fmt: skip
    print(
        "next: set `ledger: {backend: postgresql, ...}` on every server, give each its own "
        "node.name, and start them"
    )
    return 0
