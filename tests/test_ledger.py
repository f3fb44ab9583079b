"""The job ledger on real SQLite files; concurrency and crashes with real processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from daemon import fsinfo
from daemon.errors import LedgerError
from daemon.fsinfo import filesystem_type, find_mount, is_network_fs, parse_mountinfo
from daemon.ledger import INTERRUPTED, SCHEMA_VERSION, Fingerprint, Ledger, open_ledger

REPO = Path(__file__).resolve().parents[1]
SETTINGS = '{"language": null}'
FP1 = Fingerprint(size=100, mtime_ns=1_000, inode=7)
FP2 = Fingerprint(size=120, mtime_ns=2_000, inode=7)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


@pytest.fixture
def ledger(db: Path):
    with Ledger(db) as led:
        yield led


def add(led: Ledger, path: str, fp: Fingerprint = FP1, *, model: str = "small", now: float = 0):
    job = led.enqueue(path, fp, model=model, settings_json=SETTINGS, now=now)
    assert job is not None
    return job


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- intake ------------------------------------------------------------------------------


def test_enqueue_dedupes_across_reopen(db: Path) -> None:
    with Ledger(db) as led:
        job = add(led, "a/x.wav", now=10)
        assert (job.state, job.attempts, job.enqueued_at, job.model) == ("queued", 0, 10, "small")
        assert led.enqueue("a/x.wav", FP1, model="small", settings_json=SETTINGS, now=11) is None
        led.complete(
            led.claim("w", now=12).id,
            outputs=["a/x.srt"],
            audio_seconds=5,
            processing_seconds=1,
            language="en",
            now=13,
        )
    with Ledger(db) as led:  # a restart
        assert led.is_known("a/x.wav", FP1)
        assert led.enqueue("a/x.wav", FP1, model="large", settings_json="{}", now=20) is None
        assert led.counts()["done"] == 1 and led.counts()["queued"] == 0
        assert led.get(job.id).outputs == ("a/x.srt",)
        # Same path and times but without an inode is a different version key.
        assert not led.is_known("a/x.wav", Fingerprint(100, 1_000, None))
        assert not led.is_known("a/x.wav", FP2)


def test_null_inode_versions_are_deduped(ledger: Ledger) -> None:
    fp = Fingerprint(5, 6, None)
    add(ledger, "n.wav", fp)
    assert ledger.is_known("n.wav", fp)
    assert ledger.enqueue("n.wav", fp, model="small", settings_json=SETTINGS, now=1) is None
    assert ledger.counts()["queued"] == 1


def test_huge_inode_round_trips(ledger: Ledger) -> None:
    fp = Fingerprint(1, 2, 2**64 - 5)  # 64-bit inodes (NFS, overlayfs) exceed SQLite's range
    job = add(ledger, "big.wav", fp)
    assert ledger.get(job.id).fingerprint == fp
    assert ledger.is_known("big.wav", fp)
    assert ("big.wav", fp) in ledger.known_versions()


def test_fingerprint_from_stat(tmp_path: Path) -> None:
    f = tmp_path / "a.wav"
    f.write_bytes(b"12345")
    st = f.stat()
    assert Fingerprint.from_stat(st, use_inode=True) == Fingerprint(5, st.st_mtime_ns, st.st_ino)
    assert Fingerprint.from_stat(st, use_inode=False).inode is None


def test_new_version_supersedes_queued_and_failed(ledger: Ledger) -> None:
    v1 = add(ledger, "a.wav", FP1, now=1)
    v2 = add(ledger, "a.wav", FP2, now=2)
    assert ledger.get(v1.id).state == "superseded"
    ledger.fail(
        ledger.claim("w", now=3).id,
        error="bad",
        transient=False,
        max_attempts=1,
        backoff=1,
        backoff_max=1,
        now=4,
    )
    assert ledger.get(v2.id).state == "failed"
    v3 = add(ledger, "a.wav", Fingerprint(130, 3_000, 7), now=5)
    assert ledger.get(v2.id).state == "superseded"
    assert [j.id for j in ledger.latest_per_path()] == [v3.id]
    assert ledger.retry(now=6) == 0  # the superseded failure is not retried


def test_new_version_waits_for_running_older_version(ledger: Ledger) -> None:
    v1 = add(ledger, "a.wav", FP1, now=1)
    add(ledger, "b.wav", FP1, now=2)
    assert ledger.claim("w1", now=3).id == v1.id
    v2 = add(ledger, "a.wav", FP2, now=4)
    assert ledger.get(v1.id).state == "running"  # left alone
    assert ledger.get(v2.id).state == "queued"
    # Another worker skips a.wav (its older version runs) and takes b.wav.
    assert ledger.claim("w2", now=5).path == "b.wav"
    assert ledger.claim("w3", now=6) is None
    ledger.complete(v1.id, outputs=[], audio_seconds=1, processing_seconds=1, language="en", now=7)
    assert ledger.claim("w3", now=8).id == v2.id
    latest = {j.path: j.state for j in ledger.latest_per_path()}
    assert latest == {"a.wav": "running", "b.wav": "running"}


def test_database_refuses_two_running_rows_for_one_path(ledger: Ledger, db: Path) -> None:
    add(ledger, "a.wav", FP1, now=1)
    ledger.claim("w", now=2)
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO jobs (path, size, mtime_ns, state, enqueued_at, updated_at, model) "
            "VALUES (?, 1, 1, 'running', 0, 0, 'm')",
            (b"a.wav",),
        )
    conn.close()


def test_gone_version_is_revived_when_it_reappears(ledger: Ledger) -> None:
    job = add(ledger, "a.wav", now=1)
    assert ledger.mark_gone("a.wav", now=2) == 1
    assert ledger.get(job.id).state == "gone"
    assert not ledger.is_known("a.wav", FP1)
    assert ledger.claim("w", now=3) is None
    again = add(ledger, "a.wav", now=4)
    assert (again.id, again.state, again.enqueued_at) == (job.id, "queued", 4)
    assert ledger.mark_gone("nothing.wav", now=5) == 0


def test_non_utf8_path_round_trips(ledger: Ledger, db: Path) -> None:
    name = os.fsdecode(b"dir/caf\xe9.wav")
    job = add(ledger, name)
    assert ledger.get(job.id).path == name
    assert os.fsencode(ledger.claim("w", now=1).path) == b"dir/caf\xe9.wav"
    assert ledger.is_known(name, FP1)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT path FROM jobs").fetchone()[0] == b"dir/caf\xe9.wav"
    conn.close()
    assert ledger.known_versions(under="dir") == {(name, FP1)}


# --- scheduling --------------------------------------------------------------------------


def test_claim_oldest_first_and_respects_not_before(ledger: Ledger) -> None:
    c = add(ledger, "c.wav", now=3)
    a = add(ledger, "a.wav", now=1)
    b = add(ledger, "b.wav", now=2)
    ledger.fail(
        ledger.claim("w", now=4).id,
        error="x",
        transient=False,
        max_attempts=3,
        backoff=100,
        backoff_max=100,
        now=5,
    )
    assert ledger.get(a.id).not_before == 105
    assert ledger.queue_depth(now=6) == 2
    assert [ledger.claim("w", now=6).id, ledger.claim("w", now=6).id] == [b.id, c.id]
    assert ledger.claim("w", now=104.9) is None
    job = ledger.claim("w", now=105)
    assert (job.id, job.state, job.worker, job.started_at, job.progress) == (
        a.id,
        "running",
        "w",
        105,
        0,
    )


@pytest.mark.parametrize(("gap", "expected"), [(60.0, "loaded.wav"), (60.5, "oldest.wav")])
def test_claim_affinity_window(ledger: Ledger, gap: float, expected: str) -> None:
    add(ledger, "oldest.wav", model="large", now=1000.0)
    add(ledger, "other.wav", model="medium", now=1000.0 + gap / 2)
    add(ledger, "loaded.wav", model="small", now=1000.0 + gap)
    job = ledger.claim("w", loaded_models={"small"}, now=2000, affinity_seconds=60)
    assert job.path == expected


def test_claim_affinity_prefers_oldest_loaded_and_ignores_empty(ledger: Ledger) -> None:
    add(ledger, "a.wav", model="large", now=1)
    add(ledger, "b.wav", model="small", now=2)
    add(ledger, "c.wav", model="small", now=3)
    assert ledger.claim("w", loaded_models=(), now=10, affinity_seconds=60).path == "a.wav"
    add(ledger, "d.wav", model="large", now=4)
    assert ledger.claim("w", loaded_models=["small"], now=10, affinity_seconds=60).path == "b.wav"
    assert ledger.claim("w", loaded_models=["large"], now=10, affinity_seconds=60).path == "d.wav"


# --- failures and recovery ---------------------------------------------------------------


def _fail(led: Ledger, job_id: int, now: float, *, transient: bool = False) -> str:
    return led.fail(
        job_id,
        error="boom",
        transient=transient,
        max_attempts=3,
        backoff=10,
        backoff_max=15,
        now=now,
    )


def test_fail_backs_off_then_fails_after_max_attempts(ledger: Ledger) -> None:
    job = add(ledger, "a.wav")
    assert _fail(ledger, ledger.claim("w", now=0).id, now=100) == "queued"
    assert ledger.get(job.id).not_before == 110  # 10 * 2**0
    assert ledger.claim("w", now=109) is None
    assert _fail(ledger, ledger.claim("w", now=110).id, now=200) == "queued"
    assert ledger.get(job.id).not_before == 215  # min(10 * 2**1, 15)
    assert _fail(ledger, ledger.claim("w", now=215).id, now=300) == "failed"
    failed = ledger.get(job.id)
    assert (failed.state, failed.attempts, failed.error_kind, failed.last_error) == (
        "failed",
        3,
        "permanent",
        "boom",
    )
    assert failed.finished_at == 300
    assert ledger.claim("w", now=10_000) is None
    assert [j.id for j in ledger.recent_failures(5)] == [job.id]
    assert ledger.enqueue("a.wav", FP1, model="small", settings_json="{}", now=400) is None


def test_transient_errors_get_ten_attempts(ledger: Ledger) -> None:
    job = add(ledger, "a.wav")
    now = 0.0
    states = []
    for _ in range(10):
        claimed = ledger.claim("w", now=now)
        states.append(_fail(ledger, claimed.id, now, transient=True))
        now = ledger.get(job.id).not_before
    assert states == ["queued"] * 9 + ["failed"]
    assert ledger.get(job.id).error_kind == "transient"
    # A permanent error after transient ones fails at max_attempts, which is long past.
    other = add(ledger, "b.wav", now=now)
    _fail(ledger, ledger.claim("w", now=now).id, now, transient=True)
    _fail(ledger, ledger.claim("w", now=now + 100).id, now + 100, transient=True)
    assert _fail(ledger, ledger.claim("w", now=now + 200).id, now + 200) == "failed"
    assert ledger.get(other.id).attempts == 3


def test_requeue_does_not_count_an_attempt(ledger: Ledger) -> None:
    job = add(ledger, "a.wav")
    ledger.claim("w", now=1)
    ledger.set_progress(job.id, 0.5, now=2)
    assert ledger.get(job.id).progress == 0.5
    ledger.requeue(job.id, reason="shutdown", now=3)
    back = ledger.get(job.id)
    assert (back.state, back.attempts, back.progress, back.worker) == ("queued", 0, 0, None)
    assert not ledger.set_progress(job.id, 0.7, now=4)  # not running any more
    with pytest.raises(LedgerError, match="not running"):
        ledger.complete(
            job.id, outputs=[], audio_seconds=1, processing_seconds=1, language=None, now=5
        )


def test_retry_all_paths_and_folders(ledger: Ledger) -> None:
    for i, path in enumerate(["a/b/1.wav", "a/b/2.wav", "a/bc/3.wav", "a/b0", "z.wav"]):
        add(ledger, path, now=i)
    for i in range(5):
        job = ledger.claim("w", now=10 + i)
        _fail(ledger, job.id, 10 + i)
        ledger.claim("w", now=100 + i)  # backoff elapsed: claim again and fail for good
        ledger.fail(
            job.id, error="x", transient=False, max_attempts=2, backoff=1, backoff_max=1, now=100
        )
    assert ledger.counts()["failed"] == 5
    assert ledger.retry(["a/b/"], now=200) == 2  # not a/bc, not a/b0
    assert ledger.retry(["z.wav", "nope"], now=200) == 1
    queued = {j.path: j for j in ledger.latest_per_path() if j.state == "queued"}
    assert set(queued) == {"a/b/1.wav", "a/b/2.wav", "z.wav"}
    assert all(j.attempts == 0 and j.not_before == 200 for j in queued.values())
    assert ledger.retry(None, now=300) == 2
    assert ledger.counts()["failed"] == 0


def test_recover_requeues_running_rows_left_by_a_restart(db: Path) -> None:
    with Ledger(db) as led:
        job = add(led, "a.wav")
        led.claim("w", now=1)
    with Ledger(db) as led:
        assert led.recover(now=50) == 1
        back = led.get(job.id)
        assert (back.state, back.attempts, back.last_error, back.not_before) == (
            "queued",
            1,
            INTERRUPTED,
            50,
        )
        assert led.recover(now=51) == 0
        led.claim("w", now=52)
        assert led.recover(now=53, crash_limit=2) == 1
        assert led.get(job.id).state == "failed"


CLAIM_AND_HANG = """
    import sys, time
    from pathlib import Path
    import structlog
    from daemon.ledger import Ledger
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    led = Ledger(Path(sys.argv[1]))
    job = led.claim("doomed", now=5)
    # Half a transaction: this update must vanish with the process.
    led._conn.execute("BEGIN IMMEDIATE")
    led._conn.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (job.id,))
    print(job.id, flush=True)
    time.sleep(600)
"""


def test_recover_after_kill_9_mid_transaction(db: Path) -> None:
    with Ledger(db) as led:
        job = add(led, "a.wav")
        add(led, "b.wav", now=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CLAIM_AND_HANG), str(db)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) == job.id
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with Ledger(db) as led:  # the restart
        assert led.counts()["running"] == 1 and led.counts()["done"] == 0
        assert led.recover(now=10) == 1
        back = led.get(job.id)
        assert (back.state, back.attempts, back.worker) == ("queued", 1, None)
        assert led.claim("w", now=11).id == job.id


# --- processes ---------------------------------------------------------------------------


READ_COUNTS = """
    import json, sys, time
    from pathlib import Path
    import structlog
    from daemon.errors import LedgerError
    from daemon.ledger import Ledger
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    start = time.monotonic()
    with Ledger(Path(sys.argv[1]), readonly=True) as led:
        counts, depth = led.counts(), led.queue_depth(now=100)
        try:
            led.retry(now=1)
            refused = False
        except LedgerError:
            refused = True
    print(json.dumps({"counts": counts, "depth": depth, "refused": refused,
                      "seconds": time.monotonic() - start}))
"""


def test_readonly_reader_in_another_process_while_writer_holds_a_transaction(db: Path) -> None:
    with Ledger(db) as led:
        for i in range(3):
            add(led, f"{i}.wav", now=i)
        led.claim("w", now=5)
        # The service is in the middle of a write transaction; the reader must not wait.
        led._conn.execute("BEGIN IMMEDIATE")
        led._conn.execute("UPDATE jobs SET state = 'gone' WHERE state = 'queued'")
        result = run_python(READ_COUNTS, str(db))
        led._conn.execute("ROLLBACK")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["queued"] == 2 and report["counts"]["running"] == 1
    assert report["counts"]["gone"] == 0 and report["depth"] == 2
    assert report["refused"]
    assert report["seconds"] < 5  # far below busy_timeout: it did not wait for the lock


def test_readonly_without_a_ledger_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger yet"):
        Ledger(tmp_path / "ledger.sqlite3", readonly=True)


def _claim_all(db: str, worker: str, start: Any) -> list[int]:
    """Child process: claim and complete jobs until none is left."""
    claimed = []
    start.wait(30)
    with Ledger(Path(db)) as led:
        while (job := led.claim(worker, now=10)) is not None:
            claimed.append(job.id)
            led.complete(
                job.id, outputs=[], audio_seconds=1, processing_seconds=1, language="en", now=11
            )
    return claimed


def test_processes_claiming_concurrently_never_share_a_job(db: Path) -> None:
    with Ledger(db) as led:
        total = led.enqueue_many(
            ((f"f{i:04}.wav", FP1) for i in range(300)), model="small", settings_json="{}", now=1
        )
    assert total == 300
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            results = [pool.apply_async(_claim_all, (str(db), f"p{i}", start)) for i in range(4)]
            start.set()
            per_worker = [r.get(timeout=120) for r in results]
    claimed = [job_id for ids in per_worker for job_id in ids]
    assert len(claimed) == len(set(claimed)) == 300
    assert sum(1 for ids in per_worker if ids) >= 2, "the workers did not overlap"
    who = {job_id: f"p{i}" for i, ids in enumerate(per_worker) for job_id in ids}
    with Ledger(db) as led:
        assert led.counts()["done"] == 300
        assert {j.id: j.worker for j in led.latest_per_path()} == who


# --- opening -----------------------------------------------------------------------------


def test_corrupt_file_is_a_ledger_error(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite\n" * 500)
    with pytest.raises(LedgerError, match=r"not a usable whisperd ledger.*move the file"):
        Ledger(db)


def test_damaged_pages_are_a_ledger_error(db: Path) -> None:
    with Ledger(db) as led:
        led.enqueue_many(
            ((f"{i:05}" * 20, FP1) for i in range(2000)), model="m", settings_json="{}", now=1
        )
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    data[8192:40960] = b"\xff" * 32768  # scribble over index and table pages
    db.write_bytes(bytes(data))
    with pytest.raises(LedgerError, match="not a usable whisperd ledger"):
        Ledger(db)


def test_newer_schema_is_refused(db: Path) -> None:
    Ledger(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(LedgerError, match="newer than this whisperd"):
        Ledger(db)


def test_pragmas_and_schema(tmp_path: Path) -> None:
    with open_ledger(tmp_path) as led:
        conn = led._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert (tmp_path / "ledger.sqlite3").exists()


# --- status queries ----------------------------------------------------------------------


def test_counts_throughput_and_latest(ledger: Ledger) -> None:
    assert ledger.counts() == dict.fromkeys(
        ["queued", "running", "done", "failed", "superseded", "gone"], 0
    )
    for i, audio in enumerate([3600.0, 1800.0, 900.0]):
        job = add(ledger, f"{i}.wav", now=i)
        ledger.claim("w", now=10)
        ledger.complete(
            job.id,
            outputs=[f"{i}.txt"],
            audio_seconds=audio,
            processing_seconds=60,
            language="de",
            now=[1000, 3000, 3600][i],
        )
    # Window (0, 3600]... only finished in (3600 - 1800, 3600]: 1800 + 900 audio seconds.
    assert ledger.throughput(1800, now=3600) == pytest.approx(2700 / 1800)
    assert ledger.throughput(3600, now=3600) == pytest.approx(6300 / 3600)
    assert ledger.throughput(60, now=10_000) == 0
    add(ledger, "0.wav", FP2, now=4000)
    latest = {j.path: (j.state, j.fingerprint) for j in ledger.latest_per_path()}
    assert latest["0.wav"] == ("queued", FP2) and latest["1.wav"][0] == "done"
    assert ledger.counts()["done"] == 3 and ledger.counts()["queued"] == 1
    assert ledger.running() == []
    with pytest.raises(LedgerError, match="no job 999"):
        ledger.get(999)


def test_100k_is_known_lookups(ledger: Ledger) -> None:
    n = 100_000
    versions = [(f"folder{i % 100}/file{i}.wav", Fingerprint(i, i * 7, i + 1)) for i in range(n)]
    t0 = time.perf_counter()
    assert ledger.enqueue_many(versions, model="small", settings_json="{}", now=1) == n
    t1 = time.perf_counter()
    assert all(ledger.is_known(p, fp) for p, fp in versions)
    t2 = time.perf_counter()
    known = ledger.known_versions()
    assert all(v in known for v in versions)
    t3 = time.perf_counter()
    assert not ledger.is_known("folder1/file1.wav", Fingerprint(1, 8, 2))
    assert len(ledger.known_versions(under="folder7")) == n // 100
    print(
        f"\n100k: enqueue_many {t1 - t0:.2f}s, is_known x{n} {t2 - t1:.2f}s, "
        f"known_versions + lookups {t3 - t2:.2f}s"
    )
    assert t2 - t1 < 60  # generous; the printed number is the benchmark


# --- filesystems -------------------------------------------------------------------------

SAMPLE_MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:50 / /srv/media rw,relatime shared:7 master:2 - nfs4 nas:/media rw,vers=4.2
41 40 0:51 / /srv/media/local\\040disk rw,relatime - xfs /dev/sdb1 rw
42 27 0:52 /share /mnt/my\\040share rw - cifs //nas/share rw
43 27 0:53 / /mnt/stack rw - ext4 /dev/sdc1 rw
44 43 0:54 / /mnt/stack rw - fuse.sshfs me@host:/ rw
garbage line
"""


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/srv/media/inbox/a.wav", "nfs4"),
        ("/srv/media", "nfs4"),
        ("/srv/mediaX/a", "ext4"),  # a prefix of the name is not a parent folder
        ("/srv/media/local disk/state", "xfs"),
        ("/mnt/my share/x", "cifs"),
        ("/mnt/stack/x", "fuse.sshfs"),  # the mount on top wins
        ("/proc/self", "proc"),
        ("/home", "ext4"),
    ],
)
def test_filesystem_type_from_sample_mountinfo(path: str, fstype: str) -> None:
    assert filesystem_type(path, SAMPLE_MOUNTINFO) == fstype


def test_network_filesystems_in_sample() -> None:
    assert is_network_fs("/srv/media/x", SAMPLE_MOUNTINFO)
    assert is_network_fs("/mnt/stack", SAMPLE_MOUNTINFO)
    assert not is_network_fs("/srv/media/local disk", SAMPLE_MOUNTINFO)
    assert len(parse_mountinfo(SAMPLE_MOUNTINFO)) == 7
    assert find_mount("/mnt/my share", SAMPLE_MOUNTINFO).source == "//nas/share"
    assert filesystem_type("/x", "") == "unknown"


def test_filesystem_type_on_real_mountinfo(tmp_path: Path) -> None:
    assert filesystem_type("/proc/self") == "proc"
    fstype = filesystem_type(tmp_path)
    assert fstype != "unknown"
    mounts = (Path("/proc/self/mountinfo").read_text()).split()
    assert fstype in mounts


def test_ledger_warns_on_a_network_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    mountinfo = tmp_path / "mountinfo"
    line = f"50 27 0:60 / {str(state).replace(' ', chr(92) + '040')} rw - nfs4 nas:/s rw\n"
    mountinfo.write_text(SAMPLE_MOUNTINFO + line)
    monkeypatch.setattr(fsinfo, "MOUNTINFO", mountinfo)
    with structlog.testing.capture_logs() as logs:
        Ledger(state / "ledger.sqlite3").close()
    warnings = [e for e in logs if e["event"] == "ledger_on_network_filesystem"]
    assert warnings and warnings[0]["fstype"] == "nfs4" and warnings[0]["log_level"] == "warning"


def test_readonly_reader_after_the_service_stopped(db: Path) -> None:
    with Ledger(db) as led:
        add(led, "a.wav")
    result = run_python(READ_COUNTS, str(db))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["queued"] == 1


def test_worker_threads_share_one_ledger(ledger: Ledger) -> None:
    ledger.enqueue_many(
        ((f"{i}.wav", FP1) for i in range(200)), model="small", settings_json="{}", now=1
    )
    claimed: list[list[int]] = [[] for _ in range(4)]

    def work(n: int) -> None:
        while (job := ledger.claim(f"gpu{n}", now=2)) is not None:
            claimed[n].append(job.id)
            ledger.set_progress(job.id, 0.5, now=3)
            ledger.complete(
                job.id, outputs=[], audio_seconds=1, processing_seconds=1, language=None, now=4
            )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids = [i for ids in claimed for i in ids]
    assert len(ids) == len(set(ids)) == 200
    assert ledger.counts()["done"] == 200


def test_abandon_marks_a_running_job_gone_or_superseded(ledger: Ledger) -> None:
    gone, changed = add(ledger, "a.wav"), add(ledger, "b.wav")
    ledger.claim("w", now=1)
    ledger.abandon(gone.id, state="gone", reason="the file disappeared", now=2)
    ledger.claim("w", now=3)
    ledger.abandon(changed.id, state="superseded", reason="changed", now=4)
    assert [ledger.get(j.id).state for j in (gone, changed)] == ["gone", "superseded"]
    assert ledger.get(gone.id).last_error == "the file disappeared"
    assert not ledger.is_known("a.wav", gone.fingerprint)  # a comeback is queued afresh
    with pytest.raises(LedgerError, match="not running"):
        ledger.abandon(gone.id, state="gone", reason="again", now=5)
