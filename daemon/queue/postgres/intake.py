"""How versions enter the PostgreSQL ledger: the same rules as :mod:`daemon.queue.versions`.

One row per version; a new version supersedes the path's queued, failed, incomplete and
skipped versions (a running one is left to finish); a superseded or gone version that
shows up again is revived. Every enqueueing transaction first takes one advisory lock
(:data:`~daemon.queue.postgres.schema.LOCK_INTAKE`), so two servers that see the same new
file at once record it once, and a version is never half-recorded by two. A claim that
runs at the same time locks the row it takes: the supersede then skips it (it is running).
"""

from __future__ import annotations

import os
from typing import Any

from daemon.queue.job import KNOWN_STATES, version_key
from daemon.queue.postgres.connection import sql
from daemon.queue.postgres.schema import LOCK_INTAKE
from daemon.queue.versions import ENTRY_STATES, NewVersion

_SAME_VERSION = "path = ? AND size = ? AND mtime_ns = ? AND inode IS NOT DISTINCT FROM ?"


def lock_intake(conn: Any) -> None:
    """Inside a transaction: one enqueuer at a time (released at commit)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_INTAKE,))


def enqueue_one(conn: Any, new: NewVersion, now: float) -> int | None:
    """Inside an enqueueing transaction: record one version; its job id, or None when known."""
    if new.state not in ENTRY_STATES:
        raise ValueError(f"a new version cannot start as {new.state!r}")
    key = version_key(new.path, new.fp)
    row = conn.execute(sql(f"SELECT id, state FROM jobs WHERE {_SAME_VERSION}"), key).fetchone()
    if row is not None and row["state"] in KNOWN_STATES:
        return None
    conn.execute(
        sql("UPDATE jobs SET state = 'superseded', updated_at = ?, finished_at = ? "
            "WHERE path = ? AND state IN ('queued', 'failed', 'incomplete', 'skipped')"),
        (now, now, key[0]),
    )  # fmt: skip
    final = new.state in ("failed", "skipped")
    fields = dict(
        state=new.state, attempts=0, not_before=now, enqueued_at=now, started_at=None,
        finished_at=now if final else None, updated_at=now, worker=None, model=new.model,
        settings=new.settings_json, outputs="[]", audio_seconds=None, processing_seconds=None,
        language=None, progress=0.0, last_error=new.reason,
        error_kind="permanent" if new.state == "failed" else None, crashes=0, staged=None,
        source_action=None, node=None, fence=None, lease_until=None,
    )  # fmt: skip
    if row is not None:  # a superseded or gone version came back: revive its row
        conn.execute(
            sql(f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in fields)} WHERE id = ?"),
            (*fields.values(), row["id"]),
        )
        return int(row["id"])
    names = ("path", "size", "mtime_ns", "inode", *fields)
    inserted = conn.execute(
        sql(f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            "RETURNING id"),
        (*key, *fields.values()),
    ).fetchone()  # fmt: skip
    return int(inserted["id"])


def path_filter(folder: str) -> tuple[str, list[bytes]]:
    """SQL and parameters matching ``folder`` itself or anything below it ('' = all)."""
    raw = os.fsencode(folder).rstrip(b"/")
    if raw in (b"", b"."):
        return "TRUE", []
    return "(path = ? OR (path >= ? AND path < ?))", [raw, raw + b"/", raw + b"0"]


def same_version_sql() -> str:
    """The WHERE clause matching one version (``?`` placeholders: path, size, mtime, inode)."""
    return _SAME_VERSION
