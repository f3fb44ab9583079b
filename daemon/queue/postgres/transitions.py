"""The worker's side of the PostgreSQL ledger: claims with leases, fenced outcomes, reclaims.

A mixin of :class:`~daemon.queue.postgres.store.PgLedger`. Each transition is one
transaction. Every write about a claimed job (stage, complete, fail, requeue, abandon)
locks the job's row and checks the claim first (:meth:`PgTransitions._fenced`): the row
must carry this process's fencing token and a lease that has not run out by the
database's clock, else :class:`~daemon.errors.LeaseLostError`. A write whose commit was
cut off by a dropped connection and is tried again finds its own result and returns it.

Scheduling is :mod:`daemon.queue.scheduling`'s rule, with ``FOR UPDATE SKIP LOCKED`` so
that nodes claiming at once never wait for each other nor take the same job, and with
the node's ``serves`` list (``node.models``) as a filter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import Any

import structlog
from psycopg.errors import UniqueViolation

from daemon.errors import LeaseLostError, LedgerError
from daemon.queue.job import Job
from daemon.queue.policy import RetryPolicy
from daemon.queue.postgres.connection import Row, sql
from daemon.queue.postgres.schema import DB_NOW
from daemon.queue.scheduling import ORDER

log = structlog.get_logger(__name__)

_ELIGIBLE = (
    "SELECT id, model, enqueued_at FROM jobs AS j "
    "WHERE state = 'queued' AND not_before <= ? {serves} AND NOT EXISTS "
    "(SELECT 1 FROM jobs AS r WHERE r.path = j.path AND r.state = 'running')"
)
_TAKE = " ORDER BY {by} LIMIT 1 FOR UPDATE SKIP LOCKED"


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def next_job(
    conn: Any,
    now: float,
    loaded: Collection[str],
    affinity: float,
    serves: Collection[str],
    order: str = "oldest",
) -> int | None:
    """The id of the job to claim next, its row locked; None when none is ready."""
    take = _TAKE.format(by=ORDER[order])
    where = _ELIGIBLE.format(serves="AND model = ANY(?)" if serves else "")
    base = [now, sorted(serves)] if serves else [now]
    oldest = conn.execute(sql(where + take), base).fetchone()
    if oldest is None:
        return None
    models = sorted(set(loaded))
    if oldest["model"] in models or not models:
        return int(oldest["id"])
    preferred = conn.execute(
        sql(where + " AND model = ANY(?) AND enqueued_at <= ?" + take),
        [*base, models, oldest["enqueued_at"] + affinity],
    ).fetchone()
    return int((preferred or oldest)["id"])


class PgTransitions:
    """Worker-side transitions; the host class supplies the plumbing and the node."""

    node: str
    lease_seconds: float
    readonly: bool
    path: str
    link: Any
    _held: dict[int, int]
    _lost: dict[int, int]
    _joined: dict[str, Any] | None

    def _write(self, op: str) -> Any:
        raise NotImplementedError

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def _job(self, conn: Any, job_id: int) -> Job:
        raise NotImplementedError

    # --- claims ---

    def claim(
        self,
        worker: str,
        *,
        loaded_models: Collection[str] = (),
        now: float | None = None,
        affinity_seconds: float = 0.0,
        order: str = "oldest",
        serves: Collection[str] = (),
    ) -> Job | None:
        """Take the next job with a lease and a fencing token, or None when none is ready."""
        now = _now(now)
        with self._write("claim") as conn:
            chosen = next_job(conn, now, loaded_models, affinity_seconds, serves, order)
            if chosen is None:
                return None
            fence = conn.execute(
                sql(f"INSERT INTO claims (job_id, node, worker, claimed_at) "
                    f"VALUES (?, ?, ?, {DB_NOW}) RETURNING id"),
                (chosen, self.node, worker),
            ).fetchone()[0]  # fmt: skip
            try:
                with conn.transaction():  # a savepoint: another node took this path just now
                    row = conn.execute(
                        sql("UPDATE jobs SET state = 'running', started_at = ?, updated_at = ?, "
                            "worker = ?, node = ?, progress = 0, fence = ?, "
                            f"lease_until = {DB_NOW} + ? WHERE id = ? RETURNING *"),
                        (now, now, worker, self.node, fence, self.lease_seconds, chosen),
                    ).fetchone()  # fmt: skip
            except UniqueViolation:  # the path runs elsewhere now: try again on the next poll
                conn.execute("DELETE FROM claims WHERE id = %s", (fence,))
                return None
            job = Job.from_row(row)
            self._held[job.id] = fence
        log.info("job_claimed", job=job.id, path=job.path, worker=worker, model=job.model,
                 node=self.node, fence=fence)  # fmt: skip
        return job

    def holds(self, job_id: int) -> bool:
        """True while this process holds ``job_id``'s claim with a lease that has not run out.

        Asked right before outputs are renamed into place; the lease must have at least a
        tenth of its length left, so a pause between this answer and the renames has to
        outlast that margin to matter (the README's "where it ends").
        """
        fence = self._held.get(job_id)
        if fence is None:
            return False
        rows = self._read(
            f"SELECT 1 FROM jobs WHERE id = ? AND fence = ? AND state = 'running' "
            f"AND lease_until > {DB_NOW} + ?",
            (job_id, fence, self.lease_seconds / 10),
        )
        return bool(rows)

    def _fenced(
        self, conn: Any, job_id: int, op: str, finished: Collection[str] = ()
    ) -> Row | None:
        """Lock the job's row and check the claim (module docstring); None: already done."""
        fence = self._held.get(job_id)
        if fence is None and job_id in self._lost:
            raise LeaseLostError(f"cannot {op} job {job_id}: this node's lease on it ran out")
        row = conn.execute(
            f"SELECT *, {DB_NOW} AS db_now FROM jobs WHERE id = %s FOR UPDATE", (job_id,)
        ).fetchone()
        if row is None:
            raise LedgerError(f"no job {job_id} in the ledger")
        ours = fence is not None and row["fence"] == fence
        if row["state"] != "running" and (ours or fence is None):
            if ours and row["state"] in finished:
                return None  # an earlier try of this write committed before the link dropped
            raise LedgerError(f"cannot {op} job {job_id}: it is {row['state']}, not running")
        if not ours:
            self._forget(job_id)
            raise LeaseLostError(
                f"cannot {op} job {job_id}: this node no longer holds it (claimed again by "
                f"node {row['node'] or '?'})"
            )
        if row["lease_until"] <= row["db_now"]:
            self._forget(job_id)
            late = row["db_now"] - row["lease_until"]
            raise LeaseLostError(
                f"cannot {op} job {job_id}: its lease ran out {late:.1f} s ago (this node was "
                "paused or cut off); another node takes it"
            )
        return row

    def _forget(self, job_id: int) -> None:
        """The claim is lost: every later write about the job is refused as such."""
        fence = self._held.pop(job_id, None)
        if fence is not None:
            self._lost[job_id] = fence

    def _end_claim(self, conn: Any, job_id: int, outcome: str) -> None:
        fence = self._held.pop(job_id, None)
        if fence is not None:
            conn.execute(
                sql(f"UPDATE claims SET ended_at = {DB_NOW}, outcome = ?, lease_until = "
                    "(SELECT lease_until FROM jobs WHERE id = ?) WHERE id = ?"),
                (outcome, job_id, fence),
            )  # fmt: skip

    # --- one job ---

    def set_progress(self, job_id: int, fraction: float, now: float | None = None) -> bool:
        """Record progress of a job this process holds; False if it does not any more."""
        now = _now(now)
        fraction = min(1.0, max(0.0, fraction))
        fence = self._held.get(job_id)
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only, cannot set progress")
        with self.link.session("set progress") as conn:  # one statement: no transaction
            cursor = conn.execute(
                sql("UPDATE jobs SET progress = ?, updated_at = ? "
                    "WHERE id = ? AND state = 'running' AND fence IS NOT DISTINCT FROM ?"),
                (fraction, now, job_id, fence),
            )  # fmt: skip
            return cursor.rowcount == 1

    def stage(self, job_id: int, record: dict[str, Any], now: float | None = None) -> None:
        """Record the outputs written to temp files (fenced), before they are renamed."""
        now = _now(now)
        with self._write("stage outputs") as conn:
            self._fenced(conn, job_id, "stage outputs for")
            conn.execute(
                "UPDATE jobs SET staged = %s, updated_at = %s WHERE id = %s",
                (json.dumps(record), now, job_id),
            )

    def complete(
        self,
        job_id: int,
        *,
        outputs: Sequence[str],
        audio_seconds: float,
        processing_seconds: float,
        language: str | None,
        source_action: str | None = None,
        now: float | None = None,
    ) -> Job:
        """A job this process holds succeeded → done (refused once the lease is lost)."""
        now = _now(now)
        with self._write("complete") as conn:
            if self._fenced(conn, job_id, "complete", finished=("done",)) is not None:
                conn.execute(
                    sql("UPDATE jobs SET state = 'done', finished_at = ?, updated_at = ?, "
                        "outputs = ?, audio_seconds = ?, processing_seconds = ?, language = ?, "
                        "progress = 1, last_error = NULL, error_kind = NULL, staged = NULL, "
                        "source_action = ? WHERE id = ?"),
                    (now, now, json.dumps(list(outputs)), audio_seconds, processing_seconds,
                     language, source_action, job_id),
                )  # fmt: skip
            self._end_claim(conn, job_id, "done")
            return self._job(conn, job_id)

    def source_done(self, job_id: int, now: float | None = None) -> None:
        """The on_success action was carried out (or is moot): forget it."""
        now = _now(now)
        with self._write("clear the source action") as conn:
            conn.execute(
                "UPDATE jobs SET source_action = NULL, updated_at = %s WHERE id = %s",
                (now, job_id),
            )

    def fail(
        self,
        job_id: int,
        *,
        error: str,
        transient: bool,
        policy: RetryPolicy,
        now: float | None = None,
    ) -> str:
        """A job this process holds failed: 'queued' again after a backoff, or 'failed'."""
        now = _now(now)
        kind = "transient" if transient else "permanent"
        with self._write("record failure") as conn:
            row = self._fenced(conn, job_id, "fail", finished=("queued", "failed"))
            if row is None:
                self._end_claim(conn, job_id, "failed")
                return self._job(conn, job_id).state
            attempts = row["attempts"] + 1
            decision = policy.after_failure(attempts, transient)
            finished = now if decision.state == "failed" else None
            conn.execute(
                sql("UPDATE jobs SET state = ?, attempts = ?, not_before = ?, finished_at = ?, "
                    "updated_at = ?, worker = NULL, staged = NULL, last_error = ?, "
                    "error_kind = ? WHERE id = ?"),
                (decision.state, attempts, now + decision.delay, finished, now, error, kind,
                 job_id),
            )  # fmt: skip
            self._end_claim(conn, job_id, decision.state)
        log.warning(
            "job_failed", job=job_id, state=decision.state, attempts=attempts,
            limit=decision.limit, error_kind=kind, error=error, retry_in=decision.delay,
        )  # fmt: skip
        return decision.state

    def requeue(self, job_id: int, *, reason: str, now: float | None = None) -> None:
        """Put a job this process holds back in the queue without counting an attempt."""
        now = _now(now)
        with self._write("requeue") as conn:
            if self._fenced(conn, job_id, "requeue", finished=("queued",)) is not None:
                conn.execute(
                    sql("UPDATE jobs SET state = 'queued', not_before = ?, updated_at = ?, "
                        "worker = NULL, progress = 0, staged = NULL, last_error = ?, "
                        "error_kind = NULL WHERE id = ?"),
                    (now, now, reason, job_id),
                )  # fmt: skip
            self._end_claim(conn, job_id, "requeued")
        log.info("job_requeued", job=job_id, reason=reason)

    def abandon(self, job_id: int, *, state: str, reason: str, now: float | None = None) -> None:
        """A held job whose source vanished ('gone') or changed ('superseded') before it
        ran, or that needs no transcript ('skipped': the video has subtitles already)."""
        if state not in ("gone", "superseded", "skipped"):
            raise ValueError(f"abandon: state must be gone, superseded or skipped, not {state!r}")
        now = _now(now)
        with self._write("abandon") as conn:
            if self._fenced(conn, job_id, "abandon", finished=(state,)) is not None:
                conn.execute(
                    sql("UPDATE jobs SET state = ?, finished_at = ?, updated_at = ?, "
                        "worker = NULL, staged = NULL, last_error = ? WHERE id = ?"),
                    (state, now, now, reason, job_id),
                )  # fmt: skip
            self._end_claim(conn, job_id, state)
        log.info("job_abandoned", job=job_id, state=state, reason=reason)
