"""Part cluster: several ``whisperd run`` nodes on one PostgreSQL ledger, on this machine.

* throughput with 1, 2 and 3 nodes (the real model, the same batch, one inbox), and the
  scaling efficiency ``(rate_n / rate_1) / n``: on one machine the nodes share its cores
  (each node gets ``cores / n`` torch threads), so this measures what the coordination
  costs, not what more GPUs would give;
* PostgreSQL statements per job (pg_stat_statements over the whole run, idle polling
  included) and the per-claim overhead (claim → complete on the ledger, in-process, ms);
* the reclaim after ``kill -9``: from the kill to the job queued again and to its next
  claim (fake engine, ``ledger.lease_seconds`` short).

The database is a throwaway server (tests/postgres.py) with pg_stat_statements loaded.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from bench import common

LEASE = 10.0  # seconds, for the reclaim measurement


def _server():
    from tests.postgres import Server

    return Server(options="-c shared_preload_libraries=pg_stat_statements")


def _query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _node(root: Path, dsn: str, name: str, model: str, lease: float) -> common.Service:
    root.mkdir(parents=True, exist_ok=True)
    shared = root.parent
    config = root / "whisperd.yaml"
    config.write_text(
        f"inbox: {shared / 'inbox'}\noutbox: {shared / 'outbox'}\nstate_dir: {root / 'var'}\n"
        f"model_dir: {common.MODELS}\ndefaults: {{model: {model}, language: en}}\n"
        "watch: {poll: always, poll_interval: 0.5, stable_seconds: 0.5}\n"
        f"ledger: {{backend: postgresql, dsn: '{dsn}', lease_seconds: {lease}}}\n"
        f"node: {{name: {name}}}\n",
        encoding="utf-8",
    )
    return common.Service(root, config)


def throughput(work: Path, server: Any, model: str, n: int, items: list) -> dict[str, Any]:
    """One run of the batch on ``n`` nodes: audio seconds per wall second, statements."""
    dsn = server.create_database()
    _query(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    root = work / f"nodes{n}"
    nodes = [_node(root / f"node{i}", dsn, f"node{i}", model, 60.0) for i in range(n)]
    threads = str(max(1, (os.cpu_count() or 1) // n))
    try:
        for node in nodes:
            node.start(env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
        _query(dsn, "SELECT pg_stat_statements_reset()")
        started = time.monotonic()
        stems = [stem for stem, _ in items]
        for stem, clip in items:
            common.copy_clip(clip.path, root / "inbox", stem)
        common.wait_for(lambda: common.outputs_done(root / "outbox", stems), timeout=3600,
                        interval=0.2)  # fmt: skip
        wall = time.monotonic() - started
        calls = _query(dsn, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                            "WHERE dbid = (SELECT oid FROM pg_database "
                            "WHERE datname = current_database())")[0][0]  # fmt: skip
    finally:
        for node in nodes:
            node.stop()
    audio = sum(clip.duration for _, clip in items)
    return {"nodes": n, "wall_seconds": round(wall, 1), "rate": round(audio / wall, 3),
            "statements": int(calls), "statements_per_job": round(calls / len(items), 1),
            "torch_threads_per_node": int(threads)}  # fmt: skip


def claim_overhead(server: Any, jobs: int) -> dict[str, float]:
    """Median ms of one claim and of one claim → stage → holds → complete, in-process."""
    from daemon.queue import NodeInfo
    from daemon.queue.postgres import PgLedger
    from daemon.version import Fingerprint

    dsn = server.create_database()
    with PgLedger(dsn, node="bench", lease_seconds=60) as ledger:
        ledger.join(NodeInfo("bench", ("cpu",)))
        ledger.enqueue_many([(f"f{i}.wav", Fingerprint(i, i, i)) for i in range(jobs)],
                            model="m", settings_json="{}")  # fmt: skip
        claim_ms, cycle_ms = [], []
        while True:
            t0 = time.perf_counter()
            job = ledger.claim("bench/0")
            t1 = time.perf_counter()
            if job is None:
                break
            ledger.stage(job.id, {"files": []})
            ledger.holds(job.id)
            ledger.complete(job.id, outputs=[], audio_seconds=1, processing_seconds=1,
                            language="en")  # fmt: skip
            claim_ms.append((t1 - t0) * 1000)
            cycle_ms.append((time.perf_counter() - t0) * 1000)
    return {"jobs": jobs, "claim_ms": round(statistics.median(claim_ms), 2),
            "claim_to_done_ms": round(statistics.median(cycle_ms), 2)}  # fmt: skip


def reclaim(work: Path, server: Any, smoke: bool) -> dict[str, Any]:
    """kill -9 a node mid-job: seconds until its job is queued again, and claimed again."""
    dsn = server.create_database()
    root = work / "reclaim"
    lease = 3.0 if smoke else LEASE
    nodes = [_node(root / f"node{i}", dsn, f"node{i}", "tiny.en", lease) for i in range(2)]
    for node in nodes:
        node.entry = "tests.e2e.fake_whisperd"
    clip = min(common.clips("en"), key=lambda c: c.duration)
    try:
        for node in nodes:
            node.start(env={"WHISPERD_FAKE_DELAY": "2"})
        for i in range(6):
            common.copy_clip(clip.path, root / "inbox", f"r{i}")
        job = common.wait_for(
            lambda: _query(dsn, "SELECT id FROM jobs WHERE state = 'running' AND node = 'node0'"),
            timeout=120,
        )
        killed = _query(dsn, "SELECT extract(epoch from clock_timestamp())::float8")[0][0]
        os.kill(nodes[0].pid, signal.SIGKILL)
        rows = common.wait_for(
            lambda: [
                r
                for r in _query(
                    dsn,
                    "SELECT ended_at, (SELECT min(claimed_at) FROM claims AS n WHERE "
                    "n.job_id = c.job_id AND n.id > c.id) FROM claims AS c WHERE c.job_id = %s "
                    "AND c.outcome = 'expired'",
                    (job[0][0],),
                )
                if r[1] is not None
            ],
            timeout=120,
        )
    finally:
        for node in nodes:
            node.stop()
    return {"lease_seconds": lease, "queued_again_seconds": round(rows[0][0] - killed, 2),
            "claimed_again_seconds": round(rows[0][1] - killed, 2)}  # fmt: skip


def run(work: Path, *, model: str, smoke: bool) -> dict[str, Any]:
    """The whole part (see the module docstring)."""
    pool = sorted(common.clips("en"), key=lambda c: c.duration)
    items = [(f"{i:03d}_{c.path.stem}", c) for i, c in enumerate(pool[: 3 if smoke else 12])]
    server = _server()
    try:
        runs = [throughput(work, server, model, n, items) for n in ((1, 2) if smoke else (1, 2, 3))]
        base = runs[0]["rate"]
        for r in runs:
            r["speedup"] = round(r["rate"] / base, 2)
            r["efficiency"] = round(r["rate"] / base / r["nodes"], 2)
        return {
            "available": True, "model": model, "files": len(items),
            "audio_seconds": round(sum(c.duration for _, c in items), 1),
            "cores": os.cpu_count(), "runs": runs,
            "claims": claim_overhead(server, 50 if smoke else 500),
            "reclaim": reclaim(work, server, smoke),
        }  # fmt: skip
    finally:
        server.close()
