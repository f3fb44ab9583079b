"""Which queued job runs next.

Among eligible jobs (queued, ``not_before <= now``, no running row for the same path) the
:data:`jobs.order` decides which ready job is first: ``oldest``, the first queued
``(enqueued_at, id)``; ``newest``, the file modified last ``(mtime_ns, id)`` descending, so
that in a media library new episodes go before the back catalogue found by the same scan.
Except that a job whose model is already loaded on the claiming worker is preferred when it
was enqueued at most ``affinity_seconds`` after that first job: switching models per file
is avoided, and no job waits on this rule longer than the window. A node that lists the
models it serves (``node.models``) considers only jobs for those models (``serves``; empty:
any). The PostgreSQL backend states the same rule in its dialect
(:func:`daemon.queue.postgres.transitions.next_job`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

_ELIGIBLE = (
    "SELECT id, model, enqueued_at FROM jobs AS j "
    "WHERE state = 'queued' AND not_before <= ? AND NOT EXISTS "
    "(SELECT 1 FROM jobs AS r WHERE r.path = j.path AND r.state = 'running')"
)


#: jobs.order → the ORDER BY of the eligible jobs (also the PostgreSQL backend's).
ORDER = {"oldest": "enqueued_at, id", "newest": "mtime_ns DESC, id DESC"}


def next_job(
    conn: sqlite3.Connection,
    now: float,
    loaded_models: Collection[str],
    affinity_seconds: float,
    order: str = "oldest",
    serves: Collection[str] = (),
) -> int | None:
    """The id of the job to claim next, or None when none is ready (inside a transaction)."""
    by = ORDER[order]
    served = sorted(set(serves))
    eligible = _ELIGIBLE + (f" AND model IN ({', '.join('?' * len(served))})" if served else "")
    oldest = conn.execute(eligible + f" ORDER BY {by} LIMIT 1", (now, *served)).fetchone()
    if oldest is None:
        return None
    models = sorted(set(loaded_models))
    if oldest["model"] in models or not models:
        return int(oldest["id"])
    preferred = conn.execute(
        eligible + f" AND model IN ({', '.join('?' * len(models))}) "
        f"AND enqueued_at <= ? ORDER BY {by} LIMIT 1",
        (now, *served, *models, oldest["enqueued_at"] + affinity_seconds),
    ).fetchone()
    return int((preferred or oldest)["id"])
