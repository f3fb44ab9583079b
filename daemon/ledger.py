"""The job ledger: a durable queue of transcription jobs in SQLite.

One row per *version* of a source file, a version being ``(path, size, mtime_ns, inode)``
(``inode`` may be NULL: the caller decides, see :meth:`Fingerprint.from_stat`). Paths are
stored as the bytes of ``os.fsencode(rel_path)`` so names that are not UTF-8 survive; the
API takes and returns ``str`` (``os.fsdecode``, i.e. surrogateescape).

States::

    queued ──claim──▶ running ──complete──▶ done
      ▲  ▲              │ │ └──fail (attempts left)──▶ queued (not_before = now + backoff)
      │  └──requeue─────┘ └────fail (no attempts left)─▶ failed ──retry──▶ queued
      └──recover (a crash: attempts + 1)
    queued/failed ──a newer version of the path──▶ superseded
    queued ──mark_gone──▶ gone;  running ──abandon──▶ gone | superseded (source vanished or changed)

Rules:

* **A version is transcribed once.** :meth:`Ledger.enqueue` returns None for a version in
  state queued, running, done or failed. A *superseded* or *gone* version that shows up
  again (a file moved out and back, a reverted file) is revived as a fresh queued job,
  because nothing was ever transcribed from it; :meth:`Ledger.is_known` is False for them.
* **One running job per path**, enforced by a partial unique index; a new version waits
  until the older running version finishes (claim skips paths with a running row).
* **Scheduling** (:meth:`Ledger.claim`): among eligible jobs (queued, ``not_before <= now``,
  no running row for the path) the oldest ``(enqueued_at, id)`` wins, except that a job
  whose model is already loaded is preferred when it was enqueued at most
  ``affinity_seconds`` after that oldest job. No job waits on this rule longer than the
  window.
* **Failures** (:meth:`Ledger.fail`): every failure counts an attempt. A permanent error
  fails the job once ``attempts >= max_attempts``; a transient one (disk full, CUDA OOM,
  share I/O) once ``attempts >= max(max_attempts, transient_max_attempts)`` (default 10).
  Between attempts: ``not_before = now + min(backoff * 2**(attempts - 1), backoff_max)``.
* **Crashes** (:meth:`Ledger.recover`, at start-up): running rows go back to queued with
  ``attempts + 1``; they are not failed, since a crash is rarely the file's fault, unless the
  caller passes ``crash_limit`` (a file that kills the process every time).

Concurrency: one connection per :class:`Ledger`, opened with ``check_same_thread=False``
and used under one ``threading.Lock`` (worker threads share it). Writes are ``BEGIN
IMMEDIATE`` transactions, so writers in other processes (``whisperd retry``) queue behind
``busy_timeout``; WAL lets readers (``whisperd status``, ``readonly=True``) read while the
service writes. ``synchronous=FULL``: a committed transition survives power loss.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from daemon.errors import LedgerError
from daemon.fsinfo import filesystem_type, is_network_fs

log = structlog.get_logger(__name__)

FILENAME = "ledger.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
STATES = ("queued", "running", "done", "failed", "superseded", "gone")
#: States in which a version counts as known: it is never queued again.
KNOWN_STATES = ("queued", "running", "done", "failed")
TRANSIENT_MAX_ATTEMPTS = 10
INTERRUPTED = "interrupted: the service stopped while this job was running"

_CORRUPT_HINT = (
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

_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_V1}


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """What identifies one version of a file's content."""

    size: int
    mtime_ns: int
    inode: int | None

    @classmethod
    def from_stat(cls, st: os.stat_result, *, use_inode: bool) -> Fingerprint:
        """From ``os.stat``; pass ``use_inode=False`` where inodes are unstable (some shares)."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ino if use_inode else None)


@dataclass(frozen=True)
class Job:
    """One row of the ledger."""

    id: int
    path: str
    fingerprint: Fingerprint
    state: str
    attempts: int
    not_before: float
    enqueued_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    worker: str | None
    model: str
    settings: str  # JSON text
    outputs: tuple[str, ...]
    audio_seconds: float | None
    processing_seconds: float | None
    language: str | None
    progress: float
    last_error: str | None
    error_kind: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """Build from a ``SELECT *`` row."""
        return cls(
            id=row["id"],
            path=os.fsdecode(row["path"]),
            fingerprint=Fingerprint(row["size"], row["mtime_ns"], _inode_from_db(row["inode"])),
            state=row["state"],
            attempts=row["attempts"],
            not_before=row["not_before"],
            enqueued_at=row["enqueued_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            updated_at=row["updated_at"],
            worker=row["worker"],
            model=row["model"],
            settings=row["settings"],
            outputs=tuple(json.loads(row["outputs"])),
            audio_seconds=row["audio_seconds"],
            processing_seconds=row["processing_seconds"],
            language=row["language"],
            progress=row["progress"],
            last_error=row["last_error"],
            error_kind=row["error_kind"],
        )


def _inode_to_db(inode: int | None) -> int | None:
    """Inodes are unsigned 64-bit, SQLite integers signed: wrap the top half (bijective)."""
    return inode - (1 << 64) if inode is not None and inode >= (1 << 63) else inode


def _inode_from_db(value: int | None) -> int | None:
    return value + (1 << 64) if value is not None and value < 0 else value


def _version_key(path: str, fp: Fingerprint) -> tuple[bytes, int, int, int | None]:
    return (os.fsencode(path), fp.size, fp.mtime_ns, _inode_to_db(fp.inode))


def _under(folder: str) -> tuple[str, list[bytes]]:
    """SQL and parameters matching ``folder`` itself or anything below it ('' = all)."""
    raw = os.fsencode(folder).rstrip(b"/")
    if raw in (b"", b"."):
        return "1", []
    # Everything below 'a/b' sorts between 'a/b/' and 'a/b0' ('0' follows '/'): uses the index.
    return "(path = ? OR (path >= ? AND path < ?))", [raw, raw + b"/", raw + b"0"]


def _enqueue_one(
    conn: sqlite3.Connection,
    path: str,
    fp: Fingerprint,
    model: str,
    settings_json: str,
    now: float,
) -> int | None:
    """Inside a write transaction: queue one version; its job id, or None when known."""
    key = _version_key(path, fp)
    row = conn.execute(
        "SELECT id, state FROM jobs WHERE path = ? AND size = ? AND mtime_ns = ? AND inode IS ?",
        key,
    ).fetchone()
    if row is not None and row["state"] in KNOWN_STATES:
        return None
    conn.execute(
        "UPDATE jobs SET state = 'superseded', updated_at = ?, finished_at = ? "
        "WHERE path = ? AND state IN ('queued', 'failed')",
        (now, now, key[0]),
    )
    fields = dict(
        state="queued", attempts=0, not_before=now, enqueued_at=now, started_at=None,
        finished_at=None, updated_at=now, worker=None, model=model, settings=settings_json,
        outputs="[]", audio_seconds=None, processing_seconds=None, language=None,
        progress=0.0, last_error=None, error_kind=None,
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


def _now(now: float | None) -> float:
    return time.time() if now is None else now


# --- the ledger --------------------------------------------------------------------------


class Ledger:
    """The durable job queue in ``<state_dir>/ledger.sqlite3`` (pass the file's path)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        try:
            self._conn = self._connect()
        except sqlite3.OperationalError as exc:  # cannot open, locked, I/O: not corruption
            raise LedgerError(
                f"{self.path}: cannot open the ledger ({exc})",
                "check that state_dir is writable by the service user and on a local disk",
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"{self.path}: not a usable whisperd ledger ({exc})", _CORRUPT_HINT
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.exists():
                raise LedgerError(f"{self.path}: no ledger yet", "start the service once")
            uri = self.path.absolute().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"{self.path}: ledger schema {version} is newer than this whisperd "
                    f"({SCHEMA_VERSION})",
                    "upgrade whisperd, or move the file aside",
                )
            if self.readonly:
                if version < SCHEMA_VERSION:
                    raise LedgerError(
                        f"{self.path}: ledger schema {version} needs an upgrade",
                        "start the service once; it upgrades the ledger",
                    )
                conn.execute("SELECT count(*) FROM jobs").fetchone()
            else:
                self._configure_writer(conn)
                migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure_writer(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
        fstype = filesystem_type(self.path.parent)
        if mode.lower() != "wal":
            log.warning("ledger_not_wal", path=str(self.path), journal_mode=mode, fstype=fstype)
        if is_network_fs(self.path.parent):
            log.warning(
                "ledger_on_network_filesystem",
                path=str(self.path),
                fstype=fstype,
                hint="SQLite locking is unreliable on network filesystems; "
                "put state_dir on a local disk",
            )
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")

    # --- plumbing ---

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction under the lock; sqlite errors → LedgerError."""
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only, cannot {op}")
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise LedgerError(f"{self.path}: {op} failed: {exc}") from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"{self.path}: query failed: {exc}") from exc

    @staticmethod
    def _job(conn: sqlite3.Connection, job_id: int) -> Job:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no job {job_id} in the ledger")
        return Job.from_row(row)

    def _running(self, conn: sqlite3.Connection, job_id: int, op: str) -> Job:
        job = self._job(conn, job_id)
        if job.state != "running":
            raise LedgerError(f"cannot {op} job {job_id}: it is {job.state}, not running")
        return job

    # --- intake ---

    def enqueue(
        self,
        path: str,
        fp: Fingerprint,
        *,
        model: str,
        settings_json: str,
        now: float | None = None,
    ) -> Job | None:
        """Queue a version; None when it is already known (queued/running/done/failed).

        Older queued or failed versions of the path become superseded; a running one is
        left to finish and this version waits for it.
        """
        now = _now(now)
        with self._write("enqueue") as conn:
            job_id = _enqueue_one(conn, path, fp, model, settings_json, now)
            job = None if job_id is None else self._job(conn, job_id)
        if job is not None:
            log.info("job_enqueued", job=job.id, path=path, model=model)
        return job

    def enqueue_many(
        self,
        versions: Iterable[tuple[str, Fingerprint]],
        *,
        model: str,
        settings_json: str,
        now: float | None = None,
    ) -> int:
        """:meth:`enqueue` for many versions in one transaction (one fsync, for a first scan).

        Returns how many were queued.
        """
        now = _now(now)
        with self._write("enqueue") as conn:
            count = sum(
                _enqueue_one(conn, path, fp, model, settings_json, now) is not None
                for path, fp in versions
            )
        log.info("jobs_enqueued", count=count, model=model)
        return count

    def is_known(self, path: str, fp: Fingerprint) -> bool:
        """True when this version is queued, running, done or failed (one indexed lookup)."""
        rows = self._read(
            "SELECT 1 FROM jobs WHERE path = ? AND size = ? AND mtime_ns = ? AND inode IS ? "
            "AND state IN ('queued', 'running', 'done', 'failed')",
            _version_key(path, fp),
        )
        return bool(rows)

    def known_versions(self, under: str = "") -> set[tuple[str, Fingerprint]]:
        """Every known ``(path, fingerprint)``, optionally only in folder ``under``.

        For a start-up scan: one query, then set lookups.
        """
        where, params = _under(under)
        rows = self._read(
            f"SELECT path, size, mtime_ns, inode FROM jobs WHERE {where} "
            "AND state IN ('queued', 'running', 'done', 'failed')",
            params,
        )
        return {(os.fsdecode(p), Fingerprint(s, m, _inode_from_db(i))) for p, s, m, i in rows}

    def mark_gone(self, path: str, now: float | None = None) -> int:
        """The file vanished: its queued versions become gone. Returns how many."""
        now = _now(now)
        with self._write("mark gone") as conn:
            count = conn.execute(
                "UPDATE jobs SET state = 'gone', updated_at = ?, finished_at = ? "
                "WHERE path = ? AND state = 'queued'",
                (now, now, os.fsencode(path)),
            ).rowcount
        if count:
            log.info("job_gone", path=path, count=count)
        return count

    # --- the worker's side ---

    def recover(self, now: float | None = None, *, crash_limit: int | None = None) -> int:
        """At start-up: running rows are a crash's leftovers → queued, attempts + 1.

        With ``crash_limit``, a job whose attempts reach it fails instead (a file that
        takes the service down every time). Returns how many rows were recovered.
        """
        now = _now(now)
        with self._write("recover") as conn:
            failed = 0
            if crash_limit is not None:
                failed = conn.execute(
                    "UPDATE jobs SET state = 'failed', attempts = attempts + 1, finished_at = ?, "
                    "updated_at = ?, worker = NULL, last_error = ?, error_kind = 'permanent' "
                    "WHERE state = 'running' AND attempts + 1 >= ?",
                    (now, now, f"{INTERRUPTED} (given up after {crash_limit} times)",
                     crash_limit),
                ).rowcount  # fmt: skip
            count = (
                failed
                + conn.execute(
                    "UPDATE jobs SET state = 'queued', attempts = attempts + 1, not_before = ?, "
                    "updated_at = ?, worker = NULL, progress = 0, last_error = ?, "
                    "error_kind = 'transient' WHERE state = 'running'",
                    (now, now, INTERRUPTED),
                ).rowcount
            )
        if count:
            log.warning("jobs_recovered", count=count, failed=failed, reason=INTERRUPTED)
        return count

    def claim(
        self,
        worker: str,
        *,
        loaded_models: Collection[str] = (),
        now: float | None = None,
        affinity_seconds: float = 0.0,
    ) -> Job | None:
        """Take the next job (see the module's scheduling rule), or None when none is ready."""
        now = _now(now)
        eligible = (
            "SELECT id, model, enqueued_at FROM jobs AS j "
            "WHERE state = 'queued' AND not_before <= ? AND NOT EXISTS "
            "(SELECT 1 FROM jobs AS r WHERE r.path = j.path AND r.state = 'running')"
        )
        with self._write("claim") as conn:
            oldest = conn.execute(eligible + " ORDER BY enqueued_at, id LIMIT 1", (now,)).fetchone()
            if oldest is None:
                return None
            chosen = oldest["id"]
            models = sorted(set(loaded_models))
            if oldest["model"] not in models and models:
                preferred = conn.execute(
                    eligible + f" AND model IN ({', '.join('?' * len(models))}) "
                    "AND enqueued_at <= ? ORDER BY enqueued_at, id LIMIT 1",
                    (now, *models, oldest["enqueued_at"] + affinity_seconds),
                ).fetchone()
                if preferred is not None:
                    chosen = preferred["id"]
            conn.execute(
                "UPDATE jobs SET state = 'running', started_at = ?, updated_at = ?, "
                "worker = ?, progress = 0 WHERE id = ?",
                (now, now, worker, chosen),
            )
            job = self._job(conn, chosen)
        log.info("job_claimed", job=job.id, path=job.path, worker=worker, model=job.model)
        return job

    def set_progress(self, job_id: int, fraction: float, now: float | None = None) -> bool:
        """Record progress (clamped to 0..1) of a running job; False if it is not running."""
        now = _now(now)
        fraction = min(1.0, max(0.0, fraction))
        with self._write("set progress") as conn:
            return (
                conn.execute(
                    "UPDATE jobs SET progress = ?, updated_at = ? "
                    "WHERE id = ? AND state = 'running'",
                    (fraction, now, job_id),
                ).rowcount
                == 1
            )

    def complete(
        self,
        job_id: int,
        *,
        outputs: Sequence[str],
        audio_seconds: float,
        processing_seconds: float,
        language: str | None,
        now: float | None = None,
    ) -> Job:
        """A running job succeeded → done."""
        now = _now(now)
        with self._write("complete") as conn:
            self._running(conn, job_id, "complete")
            conn.execute(
                "UPDATE jobs SET state = 'done', finished_at = ?, updated_at = ?, outputs = ?, "
                "audio_seconds = ?, processing_seconds = ?, language = ?, progress = 1, "
                "last_error = NULL, error_kind = NULL WHERE id = ?",
                (now, now, json.dumps(list(outputs)), audio_seconds, processing_seconds,
                 language, job_id),
            )  # fmt: skip
            return self._job(conn, job_id)

    def fail(
        self,
        job_id: int,
        *,
        error: str,
        transient: bool,
        max_attempts: int,
        backoff: float,
        backoff_max: float,
        now: float | None = None,
        transient_max_attempts: int = TRANSIENT_MAX_ATTEMPTS,
    ) -> str:
        """A running job failed: 'queued' again after a backoff, or 'failed' for good.

        Gives up at ``max_attempts`` attempts, or ``max(max_attempts,
        transient_max_attempts)`` when this error is transient.
        """
        now = _now(now)
        limit = max(max_attempts, transient_max_attempts) if transient else max_attempts
        kind = "transient" if transient else "permanent"
        with self._write("record failure") as conn:
            attempts = self._running(conn, job_id, "fail").attempts + 1
            if attempts < limit:
                state, delay = "queued", min(backoff * 2 ** (attempts - 1), backoff_max)
                finished = None
            else:
                state, delay, finished = "failed", 0.0, now
            conn.execute(
                "UPDATE jobs SET state = ?, attempts = ?, not_before = ?, finished_at = ?, "
                "updated_at = ?, worker = NULL, last_error = ?, error_kind = ? WHERE id = ?",
                (state, attempts, now + delay, finished, now, error, kind, job_id),
            )
        log.warning(
            "job_failed", job=job_id, state=state, attempts=attempts, limit=limit,
            error_kind=kind, error=error, retry_in=delay,
        )  # fmt: skip
        return state

    def requeue(self, job_id: int, *, reason: str, now: float | None = None) -> None:
        """Put a running job back in the queue without counting an attempt (shutdown)."""
        now = _now(now)
        with self._write("requeue") as conn:
            self._running(conn, job_id, "requeue")
            conn.execute(
                "UPDATE jobs SET state = 'queued', not_before = ?, updated_at = ?, "
                "worker = NULL, progress = 0, last_error = ?, error_kind = NULL WHERE id = ?",
                (now, now, reason, job_id),
            )
        log.info("job_requeued", job=job_id, reason=reason)

    def abandon(self, job_id: int, *, state: str, reason: str, now: float | None = None) -> None:
        """A running job whose source vanished ('gone') or changed ('superseded') before it ran."""
        if state not in ("gone", "superseded"):
            raise ValueError(f"abandon: state must be gone or superseded, not {state!r}")
        now = _now(now)
        with self._write("abandon") as conn:
            self._running(conn, job_id, "abandon")
            conn.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, updated_at = ?, worker = NULL, "
                "last_error = ? WHERE id = ?",
                (state, now, now, reason, job_id),
            )
        log.info("job_abandoned", job=job_id, state=state, reason=reason)

    def retry(self, paths: Sequence[str] | None = None, *, now: float | None = None) -> int:
        """Failed versions (all, or of these paths / below these folders) → queued afresh."""
        now = _now(now)
        if paths is None:
            where, params = "1", []
        else:
            parts = [_under(p) for p in paths]
            where = " OR ".join(w for w, _ in parts) or "0"
            params = [x for _, ps in parts for x in ps]
        with self._write("retry") as conn:
            count = conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, not_before = ?, "
                "updated_at = ?, finished_at = NULL, worker = NULL "
                f"WHERE state = 'failed' AND ({where})",
                (now, now, *params),
            ).rowcount
        log.info("jobs_retried", count=count)
        return count

    # --- queries (for `whisperd status`) ---

    def get(self, job_id: int) -> Job:
        """One job by id; LedgerError when there is none."""
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise LedgerError(f"no job {job_id} in the ledger")
        return Job.from_row(rows[0])

    def counts(self) -> dict[str, int]:
        """Rows per state, every state present (0 when none)."""
        counts = dict.fromkeys(STATES, 0)
        for state, n in self._read("SELECT state, count(*) FROM jobs GROUP BY state"):
            counts[state] = n
        return counts

    def running(self) -> list[Job]:
        """Jobs running now, oldest start first."""
        rows = self._read("SELECT * FROM jobs WHERE state = 'running' ORDER BY started_at, id")
        return [Job.from_row(r) for r in rows]

    def recent_failures(self, limit: int = 20) -> list[Job]:
        """Failed jobs, most recent first."""
        rows = self._read(
            "SELECT * FROM jobs WHERE state = 'failed' ORDER BY finished_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [Job.from_row(r) for r in rows]

    def history(self, path: str | None = None) -> list[Job]:
        """Every version (of one path, or of all), oldest first."""
        if path is None:
            rows = self._read("SELECT * FROM jobs ORDER BY id")
        else:
            rows = self._read("SELECT * FROM jobs WHERE path = ? ORDER BY id", (os.fsencode(path),))
        return [Job.from_row(r) for r in rows]

    def latest_per_path(self) -> list[Job]:
        """Each path's newest version (by enqueued_at, id): every file's final state."""
        rows = self._read(
            "SELECT * FROM (SELECT *, row_number() OVER "
            "(PARTITION BY path ORDER BY enqueued_at DESC, id DESC) AS rn FROM jobs) "
            "WHERE rn = 1 ORDER BY path"
        )
        return [Job.from_row(r) for r in rows]

    def throughput(self, window_seconds: float, now: float | None = None) -> float:
        """Audio seconds transcribed per wall second over jobs done in the last window."""
        now = _now(now)
        (total,) = self._read(
            "SELECT total(audio_seconds) FROM jobs "
            "WHERE state = 'done' AND finished_at > ? AND finished_at <= ?",
            (now - window_seconds, now),
        )[0]
        return total / window_seconds if window_seconds > 0 else 0.0

    def queue_depth(self, now: float | None = None) -> int:
        """Queued jobs ready to run now (``counts()['queued']`` includes those backing off)."""
        now = _now(now)
        return self._read(
            "SELECT count(*) FROM jobs WHERE state = 'queued' AND not_before <= ?", (now,)
        )[0][0]


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


def open_ledger(state_dir: Path, *, readonly: bool = False) -> Ledger:
    """The ledger of a state_dir: ``<state_dir>/ledger.sqlite3``."""
    return Ledger(Path(state_dir) / FILENAME, readonly=readonly)
