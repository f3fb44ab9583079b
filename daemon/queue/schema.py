"""The ledger's SQLite schema, its migrations, and how a connection is opened.

The file is ``<state_dir>/ledger.sqlite3``; ``PRAGMA user_version`` holds the schema
version and :func:`migrate` brings an older file up to :data:`SCHEMA_VERSION`, one
transaction per step, so a state_dir written by any earlier whisperd opens unchanged.
Connections use WAL (readers such as ``whisperd status`` read while the service writes) and
``synchronous=FULL`` (a committed transition survives power loss); a writer runs SQLite's
quick_check when it opens the file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import structlog

from daemon.errors import LedgerError

log = structlog.get_logger(__name__)

FILENAME = "ledger.sqlite3"
SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 10_000

CORRUPT_HINT = (
    "stop whisperd, move the file and any -wal/-shm beside it aside, then start again: "
    "the new ledger starts empty, so every file still in the inbox is queued and "
    "transcribed again"
)

_SCHEMA_V1 = (
    """
    CREATE TABLE jobs (
        id                 INTEGER PRIMARY KEY,
        path               BLOB    NOT NULL,   -- os.fsencode(path relative to the inbox)
        size               INTEGER NOT NULL,
        mtime_ns           INTEGER NOT NULL,
        inode              INTEGER,            -- NULL: not part of the version; > 2**63 wraps
        state              TEXT    NOT NULL CHECK (state IN
                               ('queued','running','done','failed','superseded','gone')),
        attempts           INTEGER NOT NULL DEFAULT 0,
        not_before         REAL    NOT NULL DEFAULT 0,   -- epoch seconds (retry backoff)
        enqueued_at        REAL    NOT NULL,
        started_at         REAL,
        finished_at        REAL,
        updated_at         REAL    NOT NULL,
        worker             TEXT,
        model              TEXT    NOT NULL,
        settings           TEXT    NOT NULL DEFAULT '{}',  -- JSON of the settings used
        outputs            TEXT    NOT NULL DEFAULT '[]',  -- JSON list of output paths
        audio_seconds      REAL,
        processing_seconds REAL,
        language           TEXT,
        progress           REAL    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
        last_error         TEXT,
        error_kind         TEXT    CHECK (error_kind IN ('permanent','transient'))
    )
    """,
    # The version key; NULL inodes are distinct in a UNIQUE index, hence the partial twin.
    "CREATE UNIQUE INDEX jobs_version ON jobs (path, size, mtime_ns, inode)",
    "CREATE UNIQUE INDEX jobs_version_noinode ON jobs (path, size, mtime_ns) WHERE inode IS NULL",
    "CREATE UNIQUE INDEX jobs_one_running ON jobs (path) WHERE state = 'running'",
    "CREATE INDEX jobs_queue ON jobs (state, enqueued_at, id)",
    "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state = 'done'",
)

_V1_COLUMNS = (
    "id, path, size, mtime_ns, inode, state, attempts, not_before, enqueued_at, started_at, "
    "finished_at, updated_at, worker, model, settings, outputs, audio_seconds, "
    "processing_seconds, language, progress, last_error, error_kind"
)

# Schema 2: the states 'incomplete' (a file still being written, waiting for its next
# change) and 'skipped' (not transcribed on purpose, with the reason); per job the number of
# times the service stopped while it ran (``crashes``), the outputs written but not yet
# published (``staged``, JSON: the two-phase commit of a job's outputs) and the on_success
# action still to do (``source_action``); and a small key-value table for what the service
# must remember or show (the version identity policy, the service's status).
_SCHEMA_V2 = (
    _SCHEMA_V1[0]
    .replace("CREATE TABLE jobs (", "CREATE TABLE jobs_v2 (")
    .replace(
        "('queued','running','done','failed','superseded','gone')",
        "('queued','running','done','failed','superseded','gone','incomplete','skipped')",
    )
    .replace(
        "error_kind         TEXT    CHECK (error_kind IN ('permanent','transient'))",
        "error_kind         TEXT    CHECK (error_kind IN ('permanent','transient')),\n"
        "        crashes            INTEGER NOT NULL DEFAULT 0,\n"
        "        staged             TEXT,\n"
        "        source_action      TEXT    CHECK (source_action IN ('move','delete'))",
    ),
    f"INSERT INTO jobs_v2 ({_V1_COLUMNS}) SELECT {_V1_COLUMNS} FROM jobs",
    "DROP TABLE jobs",
    "ALTER TABLE jobs_v2 RENAME TO jobs",
    *_SCHEMA_V1[1:],
    "CREATE INDEX jobs_pending_actions ON jobs (id) WHERE source_action IS NOT NULL",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL)",
)

# Schema 3: the notification queue (``deliveries``: one row per event and target, stored
# before it is sent; :mod:`daemon.queue.deliveries`); ``job_counts``, the rows per state and
# their audio and processing seconds, kept by triggers, so ``status``, the status page and
# every metrics scrape read a handful of rows instead of adding up a million; a partial
# index of failed rows by time (recent failures) and one of settled rows by time (the daily
# pruning, :mod:`daemon.queue.housekeeping`). A later migration that rebuilds ``jobs`` (as
# schema 2 did) drops its triggers with it: it must run :data:`COUNTERS` again.
_ADD = (
    "INSERT INTO job_counts (state, n, audio_seconds, processing_seconds) "
    "VALUES (NEW.state, 1, coalesce(NEW.audio_seconds, 0), coalesce(NEW.processing_seconds, 0)) "
    "ON CONFLICT (state) DO UPDATE SET n = n + 1, audio_seconds = audio_seconds + "
    "excluded.audio_seconds, processing_seconds = processing_seconds + excluded.processing_seconds;"
)
_SUBTRACT = (
    "UPDATE job_counts SET n = n - 1, audio_seconds = audio_seconds - "
    "coalesce(OLD.audio_seconds, 0), processing_seconds = processing_seconds - "
    "coalesce(OLD.processing_seconds, 0) WHERE state = OLD.state;"
)
COUNTERS = (
    "DELETE FROM job_counts",
    "INSERT INTO job_counts (state, n, audio_seconds, processing_seconds) SELECT state, "
    "count(*), total(audio_seconds), total(processing_seconds) FROM jobs GROUP BY state",
    "DROP TRIGGER IF EXISTS jobs_count_insert",
    "DROP TRIGGER IF EXISTS jobs_count_update",
    "DROP TRIGGER IF EXISTS jobs_count_delete",
    f"CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN {_ADD} END",
    "CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, audio_seconds, processing_seconds "
    "ON jobs WHEN OLD.state IS NOT NEW.state OR OLD.audio_seconds IS NOT NEW.audio_seconds "
    f"OR OLD.processing_seconds IS NOT NEW.processing_seconds BEGIN {_SUBTRACT} {_ADD} END",
    f"CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN {_SUBTRACT} END",
)
_SCHEMA_V3 = (
    """
    CREATE TABLE deliveries (
        seq        INTEGER PRIMARY KEY,          -- insertion order
        id         TEXT    NOT NULL UNIQUE,      -- uuid4 hex: X-Whisperd-Delivery, for dedup
        target     TEXT    NOT NULL,             -- the target's key (its name, or kind:hash)
        event      TEXT    NOT NULL,             -- done | failed | folder_idle
        body       BLOB    NOT NULL,             -- the JSON document, UTF-8, exactly as sent
        state      TEXT    NOT NULL DEFAULT 'pending'
                           CHECK (state IN ('pending', 'sent', 'given_up')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        created_at REAL    NOT NULL,             -- epoch seconds; give-up counts from here
        next_at    REAL    NOT NULL,             -- epoch seconds; due when next_at <= now
        updated_at REAL    NOT NULL,
        last_error TEXT
    )
    """,
    "CREATE INDEX deliveries_due ON deliveries (target, next_at, seq) WHERE state = 'pending'",
    "CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE state != 'pending'",
    "CREATE TABLE job_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL, "
    "audio_seconds REAL NOT NULL, processing_seconds REAL NOT NULL) WITHOUT ROWID",
    *COUNTERS,
    "CREATE INDEX jobs_failed ON jobs (finished_at) WHERE state = 'failed'",
    "CREATE INDEX jobs_settled ON jobs (finished_at) "
    "WHERE state IN ('done', 'failed', 'superseded', 'gone', 'skipped')",
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`, one transaction per step."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our read and our lock.
            if conn.execute("PRAGMA user_version").fetchone()[0] >= target:
                conn.execute("ROLLBACK")
                continue
            for statement in _MIGRATIONS[target]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("ledger_migrated", version=target)
    return max(version, SCHEMA_VERSION)


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """An open, checked connection at the current schema (a writer migrates first).

    Raises LedgerError for a file that cannot be used; sqlite3 errors for the caller to word.
    """
    if readonly:
        if not path.exists():
            raise LedgerError(f"{path}: no ledger yet", "start the service once")
        uri = path.absolute().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{path}: ledger schema {version} is newer than this whisperd ({SCHEMA_VERSION})",
                "upgrade whisperd, or move the file aside",
            )
        if readonly:
            if version < SCHEMA_VERSION:
                raise LedgerError(
                    f"{path}: ledger schema {version} needs an upgrade",
                    "start the service once; it upgrades the ledger",
                )
            conn.execute("SELECT count(*) FROM jobs").fetchone()
        else:
            _configure_writer(conn, path)
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure_writer(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    conn.execute("PRAGMA synchronous = FULL")
    if mode.lower() != "wal":
        log.warning("ledger_not_wal", path=str(path), journal_mode=mode)
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise sqlite3.DatabaseError(f"integrity check failed: {check}")
