"""Issue: a site grows from one server to several without transcribing its archive again:
``whisperd ledger migrate`` copies a populated SQLite ledger into PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from daemon.queue import open_ledger
from daemon.queue.postgres import PgLedger
from tests.e2e.cluster import node_config
from tests.e2e.service_harness import Service, wait_for
from tests.synth import make_audio


def test_migrate_a_populated_ledger_then_run_as_a_node(tmp_path: Path, pg_dsn: str) -> None:
    service = Service(tmp_path)
    for folder in ("old", "new"):
        (service.inbox / folder).mkdir()
    for i in range(4):
        make_audio(service.inbox / f"old/a{i}.wav", seconds=0.3 + i / 10)
    (service.inbox / "old/broken.wav").write_bytes(b"not audio at all" * 100)
    try:
        service.start()
        wait_for(lambda: service.all_settled(5), timeout=60)
        assert service.stop() == 0
        outputs = {p: p.stat().st_mtime_ns for p in service.outbox.rglob("*") if p.is_file()}
        before = service.history()

        result = service.cli("ledger", "migrate", "--to", pg_dsn)
        assert result.returncode == 0, result.stderr
        assert "copied 5 jobs (4 done, 1 failed)" in result.stdout
        with PgLedger(pg_dsn, readonly=True) as copy:
            assert copy.history() == before  # ids, versions, states, outputs, errors
            assert copy.get_meta("version_identity") == "inode"
        again = service.cli("ledger", "migrate", "--to", pg_dsn)
        assert again.returncode == 1 and "already holds 5 jobs" in again.stderr

        # The same server, now a node of the shared ledger, with one new file.
        service.write_config(node_config(pg_dsn, "first", lease=5.0))
        service.dsn = pg_dsn  # the harness reads the shared ledger from now on
        make_audio(service.inbox / "new/b.wav", seconds=0.4)
        service.start()
        wait_for(lambda: service.states().get("new/b.wav") == "done", timeout=60)
        assert service.status()["counts"]["done"] == 5
        running = service.cli("ledger", "migrate", "--to", pg_dsn)
        assert running.returncode == 1 and "stop it before copying its ledger" in running.stderr
        assert service.stop() == 0
    finally:
        service.close()
    # Nothing of the archive was transcribed again: its outputs are untouched.
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs
    with PgLedger(pg_dsn, readonly=True) as ledger:
        claimed = {j.path for j in ledger.history() if j.started_at and j.id > before[-1].id}
    assert claimed == {"new/b.wav"}
    assert (service.outbox / "old/broken.error.txt").is_file()


def test_migrate_says_what_is_missing(tmp_path: Path) -> None:
    service = Service(tmp_path)
    result = service.cli("ledger", "migrate")
    assert result.returncode == 2
    assert "name the database with --to DSN" in result.stderr
    env_dsn = service.cli("ledger", "migrate", "--to", "host=127.0.0.1 port=1 dbname=x")
    assert env_dsn.returncode == 1 and "no SQLite ledger to copy" in env_dsn.stderr
    with open_ledger(service.state):  # an empty ledger, and a database that is not there
        pass
    dsn = "host=127.0.0.1 port=1 dbname=x password=hunter2 connect_timeout=2"
    unreachable = service.cli("ledger", "migrate", "--to", dsn)
    assert unreachable.returncode == 1
    assert "cannot reach the ledger database 127.0.0.1:1/x" in unreachable.stderr
    assert "hunter2" not in unreachable.stderr and "Traceback" not in unreachable.stderr
