"""Several ``whisperd run`` nodes on one inbox, one outbox and one PostgreSQL ledger.

Each node is a real service in a subprocess (tests/e2e/service_harness.py) with its own
state_dir and ``node.name``; they share the inbox, the outbox and the database. The
helpers read the ledger's own audit: ``claims`` (every claim, its fencing token, when and
how it ended, by the database's clock).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tests.e2e.service_harness import Service, wait_for

FORMATS = ("txt", "srt", "vtt", "tsv", "json")


def node_config(dsn: str, name: str, lease: float, models: list[str] | None = None) -> str:
    """The YAML that makes a service a node of the shared ledger."""
    node = {"name": name, "models": models}
    ledger = {"backend": "postgresql", "dsn": dsn, "lease_seconds": lease}
    return f"ledger: {json.dumps(ledger)}\nnode: {json.dumps(node)}\n"


def make_nodes(
    root: Path, dsn: str, count: int, *, lease: float, fake: bool = True,
    env: dict[str, str] | None = None, extra: str = "",
    models: list[list[str] | None] | None = None,
) -> list[Service]:  # fmt: skip
    """``count`` services on ``root``/inbox → ``root``/outbox, polling like on a share."""
    inbox, outbox = root / "inbox", root / "outbox"
    nodes = []
    for i in range(count):
        node = Service(root / f"node{i}", fake=fake, env=env, inbox=inbox, outbox=outbox,
                       dsn=dsn)  # fmt: skip
        served = models[i] if models else None
        node.write_config(node_config(dsn, f"node{i}", lease, served) + extra,
                          watch={"poll": "always"})  # fmt: skip
        nodes.append(node)
    return nodes


def drop_copies(clip: Path, inbox: Path, names: list[str]) -> None:
    """Copies of one clip under these names, each renamed into place whole."""
    for name in names:
        target = inbox / name
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        shutil.copyfile(clip, part)
        part.rename(target)


def query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def running_on(dsn: str, node: str, fresher_than: float = 1e9) -> list[tuple]:
    """(job id, path) of jobs running on ``node``, claimed within the last seconds and for
    the first time."""
    return query(
        dsn,
        "SELECT j.id, convert_from(j.path, 'UTF8') FROM jobs AS j JOIN claims AS c "
        "ON c.id = j.fence WHERE j.state = 'running' AND j.node = %s "
        "AND c.claimed_at > extract(epoch from clock_timestamp()) - %s "
        "AND NOT EXISTS (SELECT 1 FROM claims AS o WHERE o.job_id = j.id AND o.id <> c.id)",
        (node, fresher_than),
    )


def claims_of(dsn: str, job_id: int) -> list[tuple]:
    """(node, claimed_at, ended_at, outcome, lease_until) of every claim of a job, in order."""
    return query(dsn, "SELECT node, claimed_at, ended_at, outcome, lease_until FROM claims "
                      "WHERE job_id = %s ORDER BY id", (job_id,))  # fmt: skip


def db_now(dsn: str) -> float:
    return query(dsn, "SELECT extract(epoch from clock_timestamp())::float8")[0][0]


def wait_all_done(node: Service, count: int, timeout: float) -> None:
    def done() -> bool:
        states = node.states()
        return len(states) >= count and all(s == "done" for s in states.values())

    wait_for(done, timeout=timeout, interval=0.5)


def outbox_files(outbox: Path) -> list[str]:
    return sorted(p.relative_to(outbox).as_posix() for p in outbox.rglob("*") if p.is_file())


def expected_outputs(names: list[str]) -> list[str]:
    return sorted(f"{Path(n).with_suffix('')}.{ext}" for n in names for ext in FORMATS)


def wait_until(predicate, timeout: float):
    return wait_for(predicate, timeout=timeout, interval=0.05)


def now() -> float:
    return time.time()
