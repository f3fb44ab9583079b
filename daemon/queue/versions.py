"""How a version enters the ledger: one row per version, older ones superseded, gone ones revived.

Called inside the ledger's write transaction (:meth:`daemon.queue.store.Ledger.enqueue` and
``enqueue_many``). A version already queued, running, done or failed is known and stays as
it is; a new version of a path supersedes the path's queued and failed versions (a running
one is left to finish, the new one waits); a superseded or gone version that shows up again
(a file moved out and back, a reverted file) is revived as a fresh queued job, because
nothing was ever transcribed from it. An incomplete or skipped version is superseded by
the next version of its file like a queued one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from daemon.queue.job import KNOWN_STATES, version_key
from daemon.version import Fingerprint

#: The states a version may be recorded in when it is first seen.
ENTRY_STATES = ("queued", "incomplete", "failed", "skipped")


@dataclass(frozen=True)
class NewVersion:
    """A version to record: normally queued; ``incomplete`` (still being written),
    ``failed`` (no valid settings for its folder) or ``skipped`` carry a ``reason``."""

    path: str
    fp: Fingerprint
    model: str
    settings_json: str
    state: str = "queued"
    reason: str | None = None


def enqueue_one(conn: sqlite3.Connection, new: NewVersion, now: float) -> int | None:
    """Inside a write transaction: record one version; its job id, or None when known."""
    if new.state not in ENTRY_STATES:
        raise ValueError(f"a new version cannot start as {new.state!r}")
    key = version_key(new.path, new.fp)
    row = conn.execute(
        "SELECT id, state FROM jobs WHERE path = ? AND size = ? AND mtime_ns = ? AND inode IS ?",
        key,
    ).fetchone()
    if row is not None and row["state"] in KNOWN_STATES:
        return None
    conn.execute(
        "UPDATE jobs SET state = 'superseded', updated_at = ?, finished_at = ? "
        "WHERE path = ? AND state IN ('queued', 'failed', 'incomplete', 'skipped')",
        (now, now, key[0]),
    )
    final = new.state in ("failed", "skipped")
    fields = dict(
        state=new.state, attempts=0, not_before=now, enqueued_at=now, started_at=None,
        finished_at=now if final else None, updated_at=now, worker=None, model=new.model,
        settings=new.settings_json, outputs="[]", audio_seconds=None, processing_seconds=None,
        language=None, progress=0.0, last_error=new.reason,
        error_kind="permanent" if new.state == "failed" else None, crashes=0, staged=None,
        source_action=None,
    )  # fmt: skip
    if row is not None:  # a superseded or gone version came back: revive its row
        conn.execute(
            f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in fields)} WHERE id = ?",
            (*fields.values(), row["id"]),
        )
        return int(row["id"])
    names = ("path", "size", "mtime_ns", "inode", *fields)
    cursor = conn.execute(
        f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        (*key, *fields.values()),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid
