"""The nodes of a PostgreSQL ledger: joining, heartbeats and lease renewal, intake leadership.

A mixin of :class:`~daemon.queue.postgres.store.PgLedger`.

* **Join.** A service holds a session-level advisory lock on its node name for as long as
  its connection lives, so two live services can never share a name (the second is told
  which host and pid hold it); its row in ``nodes`` says what it runs.
* **Renew.** :meth:`PgNodes.renew` extends the leases of the jobs the service says are
  alive and records the node's heartbeat, in one transaction; the jobs whose lease had
  already run out (or that another node took) are returned as lost.
* **Lead.** One node at a time scans the inbox: the holder of a session-level advisory
  lock. A lock dies with its session, so a killed leader is replaced at once; a leader
  that is alive to TCP but silent (a paused VM, a stopped process) is replaced once its
  heartbeat is older than the lease: the node that wants the lock ends the stale session
  (``pg_terminate_backend``, allowed between sessions of the same database role).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import structlog

from daemon.errors import LedgerError
from daemon.queue.nodes import NodeInfo, NodeStatus
from daemon.queue.postgres.connection import Link, Row, sql
from daemon.queue.postgres.schema import DB_NOW, LOCK_LEADER, LOCK_NODE

log = structlog.get_logger(__name__)

_LEADER_SESSION = (
    "SELECT l.pid FROM pg_locks AS l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.classid::bigint = ? AND l.objid::bigint = 0 AND l.objsubid = 2"
)


class PgNodes:
    """Node-level operations; the host class supplies the link and the node's name."""

    node: str
    lease_seconds: float
    link: Link
    _held: dict[int, int]
    _lost: dict[int, int]
    _joined: dict[str, Any] | None
    _leading_generation: int

    def _write(self, op: str) -> Any:
        raise NotImplementedError

    def _read(self, query: str, params: Any = ()) -> list[Row]:
        raise NotImplementedError

    # --- joining and leaving ---

    def join(self, info: NodeInfo) -> None:
        """Register this service as node ``info.name`` (LedgerError if a live one has it)."""
        record = {
            "name": info.name, "host": info.host, "pid": info.pid, "version": info.version,
            "workers": json.dumps(list(info.workers)),
            "models": None if info.models is None else json.dumps(list(info.models)),
        }  # fmt: skip
        with self.link.session("join the cluster") as conn:
            self._register(conn, record)
        self._joined = record
        log.info("node_joined", node=info.name, ledger=self.link.where)

    def _on_connect(self, conn: Any) -> None:
        """A new connection: the old session's locks are gone; take the node name again."""
        self._leading_generation = -1
        if self._joined is not None:
            self._register(conn, self._joined)

    def _register(self, conn: Any, record: dict[str, Any]) -> None:
        name = record["name"]
        got = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_NODE, name)
        ).fetchone()[0]
        if not got:
            row = conn.execute(
                f"SELECT host, pid, {DB_NOW} - heartbeat_at AS age FROM nodes WHERE name = %s",
                (name,),
            ).fetchone()
            holder = (f" (host {row['host']}, pid {row['pid']}, last heartbeat "
                      f"{row['age']:.0f} s ago)" if row else "")  # fmt: skip
            raise LedgerError(
                f"node name {name!r} is in use by another running whisperd service{holder}",
                "give each server its own node.name",
            )
        conn.execute(
            sql("INSERT INTO nodes (name, host, pid, version, workers, models, started_at, "
                f"heartbeat_at, backend_pid, backend_start) VALUES (?, ?, ?, ?, ?, ?, {DB_NOW}, "
                f"{DB_NOW}, pg_backend_pid(), (SELECT backend_start FROM pg_stat_activity "
                "WHERE pid = pg_backend_pid())) ON CONFLICT (name) DO UPDATE SET "
                "host = excluded.host, pid = excluded.pid, version = excluded.version, "
                "workers = excluded.workers, models = excluded.models, "
                "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
                "backend_pid = excluded.backend_pid, backend_start = excluded.backend_start"),
            (name, record["host"], record["pid"], record["version"], record["workers"],
             record["models"]),
        )  # fmt: skip

    def leave(self) -> None:
        """Remove this node's row (a clean stop) and give up its locks at once: they would go
        with the connection too, but the server ends a closed session a moment later, and
        the next intake leader should not wait for that."""
        leading = self._leading_generation == self.link.generation
        if self._joined is None and not leading:
            return
        record, self._joined = self._joined, None
        self._leading_generation = -1
        with self.link.session("leave the cluster") as conn:
            if record is not None:
                conn.execute("DELETE FROM nodes WHERE name = %s AND pid = %s",
                             (record["name"], record["pid"]))  # fmt: skip
            conn.execute("SELECT pg_advisory_unlock_all()")
        if record is not None:
            log.info("node_left", node=record["name"])

    # --- leases ---

    def renew(self, job_ids: Collection[int], now: float | None = None) -> set[int]:
        """Extend the leases of these jobs and beat the node's heart; the ids now lost.

        A job this process no longer holds (its outcome was recorded meanwhile) is skipped.
        """
        with self._write("renew leases") as conn:  # _held is read under the claims' lock
            pairs = [(i, self._held[i]) for i in job_ids if i in self._held]
            renewed: set[int] = set()
            if pairs:
                rows = conn.execute(
                    sql(f"UPDATE jobs SET lease_until = {DB_NOW} + ? WHERE state = 'running' "
                        f"AND lease_until > {DB_NOW} AND (id, fence) IN "
                        "(SELECT * FROM unnest(?::bigint[], ?::bigint[])) RETURNING id"),
                    (self.lease_seconds, [i for i, _ in pairs], [f for _, f in pairs]),
                ).fetchall()  # fmt: skip
                renewed = {r[0] for r in rows}
            if self._joined is not None:
                conn.execute(
                    sql(f"UPDATE nodes SET heartbeat_at = {DB_NOW} WHERE name = ?"), (self.node,)
                )
            lost = {i for i, _ in pairs} - renewed  # not held any more: ended meanwhile
            for job_id in lost:
                self._lost[job_id] = self._held.pop(job_id)
        if lost:
            log.warning("leases_lost", jobs=sorted(lost), node=self.node)
        return lost

    # --- intake leadership ---

    def lead(self) -> bool:
        """True while this node is the one that scans the inbox (tries to become it).

        A leader asks the database whether its session still holds the lock (a session
        ended by another node, or lost with the network, does not).
        """
        with self.link.session("take the intake lock") as conn:
            if self._leading_generation == self.link.generation:
                held = conn.execute(
                    sql(f"SELECT EXISTS ({_LEADER_SESSION} AND l.pid = pg_backend_pid())"),
                    (LOCK_LEADER,),
                ).fetchone()[0]
                if held:
                    return True
                self._leading_generation = -1
            got = conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (LOCK_LEADER,)).fetchone()[0]
            if got:
                self._leading_generation = self.link.generation
                log.info("intake_leader", node=self.node)
                return True
            self._end_stale_leader(conn)
        return False

    def _end_stale_leader(self, conn: Any) -> None:
        """The lock's holder has not beaten for a lease: end its session (module docstring)."""
        row = conn.execute(
            sql(f"SELECT n.name, n.backend_pid, n.backend_start, {DB_NOW} - n.heartbeat_at "
                f"AS age FROM nodes AS n WHERE n.backend_pid IN ({_LEADER_SESSION})"),
            (LOCK_LEADER,),
        ).fetchone()  # fmt: skip
        if row is None or row["age"] <= self.lease_seconds:
            return
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid = %s AND backend_start = %s",
            (row["backend_pid"], row["backend_start"]),
        ).fetchone()
        if ended and ended[0]:
            log.warning("stale_leader_disconnected", leader=row["name"],
                        heartbeat_age=round(row["age"], 1))  # fmt: skip

    # --- reports ---

    def nodes(self) -> list[NodeStatus]:
        """Every node that joined and has not left, with its heartbeat and running jobs."""
        rows = self._read(
            f"SELECT n.*, {DB_NOW} - n.heartbeat_at AS age, "
            "(SELECT count(*) FROM jobs AS j WHERE j.state = 'running' AND j.node = n.name "
            f"AND j.lease_until > {DB_NOW}) AS running, "
            f"n.backend_pid IN ({_LEADER_SESSION}) AS leader FROM nodes AS n ORDER BY n.name",
            (LOCK_LEADER,),
        )
        return [self._status(r) for r in rows]

    def _status(self, r: Row) -> NodeStatus:
        return NodeStatus(
            name=r["name"], host=r["host"], pid=r["pid"], version=r["version"],
            workers=tuple(json.loads(r["workers"])),
            models=tuple(json.loads(r["models"])) if r["models"] else None,
            started_at=r["started_at"], heartbeat_at=r["heartbeat_at"],
            heartbeat_age=max(0.0, r["age"]), alive=r["age"] <= self.lease_seconds,
            leader=bool(r["leader"]), running=int(r["running"]),
        )  # fmt: skip
