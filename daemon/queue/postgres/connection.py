"""One connection to the ledger database: opened, checked, reopened after it drops.

A :class:`Link` owns one psycopg connection (autocommit; a write is an explicit
transaction) used under one lock, like the SQLite ledger's. When the database restarts or
the network drops, the operation in progress fails with a :class:`LedgerError` (callers
retry their writes: :func:`daemon.jobs.outcome.with_retries`), the connection is thrown
away, and the next operation opens a new one; ``on_connect`` then restores what lived in
the old session (the node's advisory lock). Queries are written with ``?`` placeholders,
like the SQLite backend's (the shared read-only queries of :mod:`daemon.queue.reports` run
here unchanged); :func:`sql` turns them into psycopg's.

Error messages never show the password: :func:`describe` names host, port, database, user.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog

from daemon.errors import LedgerError
from daemon.queue.postgres.schema import SCHEMA_VERSION, current_version, migrate

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 10  # seconds, unless the dsn says otherwise

try:  # the optional extra: whisperd[postgresql]
    import psycopg
    from psycopg import conninfo
except ImportError:  # pragma: no cover - checked by open()
    psycopg = None  # type: ignore[assignment]


def sql(query: str) -> str:
    """A query written with ``?`` placeholders in psycopg's style (no literal % or ? used)."""
    return query.replace("%", "%%").replace("?", "%s")


def describe(dsn: str) -> str:
    """The dsn without secrets: ``host:port/dbname as user``."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except Exception:
        return "the configured database (its dsn does not parse)"
    host = parts.get("host") or parts.get("hostaddr") or "local socket"
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f" as {parts['user']}" if parts.get("user") else ""
    return f"{host}{port}/{parts.get('dbname') or '(default database)'}{user}"


class Row(tuple):
    """A row readable by position and by column name, like :class:`sqlite3.Row`."""

    _names: dict[str, int]

    def __new__(cls, names: dict[str, int], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


class Link:
    """The ledger's connection: see the module docstring."""

    def __init__(
        self,
        dsn: str,
        *,
        application_name: str,
        migrate_schema: bool = True,
        idle_in_transaction: float = 60.0,
    ) -> None:
        if psycopg is None:
            raise LedgerError(
                "the postgresql ledger needs psycopg, which is not installed",
                "pip install 'whisperd[postgresql]'",
            )
        self.dsn = dsn
        self.where = describe(dsn)
        self._application_name = application_name
        self._lock = threading.RLock()
        self._conn: Any = None
        self._dropped = False  # the last connection was lost: say so when a new one opens
        self.generation = 0  # counts connections opened: a new one lost the session's locks
        self.on_connect: Callable[[Any], None] = lambda conn: None
        self._migrate = migrate_schema
        # A session paused inside a transaction (a stopped process) releases its row locks
        # after this many seconds (the lease: its claims are void by then anyway).
        self._idle_ms = max(1000, int(idle_in_transaction * 1000))
        with self._lock:
            self._connection()

    def _open(self) -> Any:
        try:
            parts = conninfo.conninfo_to_dict(self.dsn)
        except psycopg.ProgrammingError as exc:
            raise LedgerError(f"ledger.dsn does not parse: {exc}") from None
        extra = {"application_name": self._application_name}
        if "connect_timeout" not in parts:
            extra["connect_timeout"] = str(CONNECT_TIMEOUT)
        for key, value in (("keepalives", "1"), ("keepalives_idle", "10"),
                           ("keepalives_interval", "5"), ("keepalives_count", "3")):  # fmt: skip
            parts.setdefault(key, value)
        try:
            conn = psycopg.connect(conninfo.make_conninfo(**{**parts, **extra}), autocommit=True,
                                   row_factory=_row_factory)  # fmt: skip
        except psycopg.Error as exc:
            raise LedgerError(
                f"cannot reach the ledger database {self.where}: {_first_line(exc)}",
                "check ledger.dsn and that PostgreSQL runs and accepts this server",
            ) from None
        try:
            conn.execute(f"SET idle_in_transaction_session_timeout = {self._idle_ms}")
            if self._migrate:
                migrate(conn)
            else:
                self._check_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_schema(self, conn: Any) -> None:
        """A reader neither creates nor migrates: the schema must be there, and current."""
        version = current_version(conn)
        if version == 0:
            raise LedgerError(f"no ledger yet in the database {self.where}",
                              "start a whisperd service on it once")  # fmt: skip
        if version != SCHEMA_VERSION:
            newer = "newer than this whisperd" if version > SCHEMA_VERSION else "older"
            raise LedgerError(
                f"the ledger in {self.where} has schema {version}, {newer} ({SCHEMA_VERSION})",
                "upgrade whisperd here" if version > SCHEMA_VERSION else "start a service once",
            )

    def _connection(self) -> Any:
        """The open connection (a new one after a drop); call under the lock."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            conn.close()
            self._conn = None
            self._dropped = True
        conn = self._open()
        self.generation += 1
        self._conn = conn
        if self._dropped:
            self._dropped = False
            log.info("ledger_reconnected", database=self.where)
        try:
            self.on_connect(conn)
        except BaseException:
            self.drop()
            raise
        return conn

    def drop(self) -> None:
        """Throw the connection away (the next operation opens a new one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def close(self) -> None:
        self.drop()

    @contextmanager
    def transaction(self, op: str) -> Iterator[Any]:
        """One transaction under the lock; database errors become LedgerError."""
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    yield conn
            except psycopg.Error as exc:
                raise self._error(op, exc) from None

    @contextmanager
    def session(self, op: str) -> Iterator[Any]:
        """The connection under the lock, outside any transaction (autocommit)."""
        with self._lock:
            try:
                yield self._connection()
            except psycopg.Error as exc:
                raise self._error(op, exc) from None

    def read(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        """One ``?``-style query; its rows."""
        with self.session("query") as conn:
            return conn.execute(sql(query), params).fetchall()

    def _error(self, op: str, exc: Exception) -> LedgerError:
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            self.drop()
            self._dropped = True
            log.warning("ledger_connection_lost", database=self.where, error=_first_line(exc))
            return LedgerError(f"{op}: lost the ledger database {self.where}: {_first_line(exc)}")
        return LedgerError(f"{op} failed on the ledger database {self.where}: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
