"""The daily housekeeping: prunes the history of deleted files, never while the inbox is
missing, never the outputs; and its thread stops at once."""

from __future__ import annotations

import time
from pathlib import Path

from daemon.config import Config, load_config
from daemon.queue import open_ledger
from daemon.service.housekeeping import Housekeeper
from daemon.version import Fingerprint

DAY = 86400.0


def config(tmp_path: Path, history: str = "90") -> Config:
    path = tmp_path / "whisperd.yaml"
    path.write_text(
        f"inbox: {tmp_path / 'inbox'}\noutbox: {tmp_path / 'outbox'}\n"
        f"state_dir: {tmp_path / 'var'}\njobs: {{history_days: {history}}}\n"
    )
    return load_config(path)


def done(ledger, path: str, at: float, n: int) -> None:
    job = ledger.enqueue(path, Fingerprint(n, n, n), model="m", settings_json="{}", now=at - 2)
    ledger.claim("w", now=at - 1)
    ledger.complete(job.id, outputs=[f"{path}.txt"], audio_seconds=1.0, processing_seconds=1.0,
                    language="en", now=at)  # fmt: skip


def test_prunes_old_rows_of_deleted_files_and_keeps_the_rest(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    (cfg.inbox / "a").mkdir(parents=True)
    (cfg.inbox / "a" / "kept.wav").write_bytes(b"x")
    now = time.time()
    with open_ledger(cfg.state_dir) as ledger:
        done(ledger, "a/kept.wav", now - 100 * DAY, 1)
        done(ledger, "a/deleted.wav", now - 100 * DAY, 2)
        done(ledger, "a/recent.wav", now - 1 * DAY, 3)
        keeper = Housekeeper(ledger, lambda: cfg)
        assert keeper.run_once(now) == {"pruned": 1, "vacuumed": False}
        assert {j.path for j in ledger.history()} == {"a/kept.wav", "a/recent.wav"}


def test_nothing_is_pruned_while_the_inbox_is_missing_or_history_is_kept(tmp_path: Path) -> None:
    cfg = config(tmp_path)  # the inbox folder does not exist: an unmounted share
    now = time.time()
    with open_ledger(cfg.state_dir) as ledger:
        done(ledger, "a/deleted.wav", now - 100 * DAY, 1)
        assert Housekeeper(ledger, lambda: cfg).run_once(now)["skipped"] == "inbox missing"
        forever = config(tmp_path, "null")
        forever.inbox.mkdir()
        nothing = {"pruned": 0, "vacuumed": False}
        assert Housekeeper(ledger, lambda: forever).run_once(now) == nothing
        assert len(ledger.history()) == 1


def test_the_thread_runs_at_start_and_stops_at_once(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg.inbox.mkdir()
    with open_ledger(cfg.state_dir) as ledger:
        done(ledger, "gone.wav", time.time() - 100 * DAY, 1)
        keeper = Housekeeper(ledger, lambda: cfg)
        keeper.start()
        deadline = time.monotonic() + 10
        while ledger.history() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ledger.history() == []  # the first round runs at start-up
        began = time.monotonic()
        keeper.stop()
        assert time.monotonic() - began < 1.0


def test_on_a_shared_ledger_only_the_intake_leader_prunes(tmp_path: Path, pg_dsn: str) -> None:
    from daemon.queue.postgres import PgLedger

    cfg = config(tmp_path)
    cfg.inbox.mkdir()
    now = time.time()
    with PgLedger(pg_dsn, node="a") as leader, PgLedger(pg_dsn, node="b") as other:
        done(leader, "gone.wav", now - 100 * DAY, 1)
        assert leader.lead() and not other.lead()
        skipped = Housekeeper(other, lambda: cfg).run_once(now)
        assert skipped == {"pruned": 0, "vacuumed": False, "skipped": "not the intake leader"}
        assert Housekeeper(leader, lambda: cfg).run_once(now) == {"pruned": 1, "vacuumed": False}
