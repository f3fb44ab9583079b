"""Issue: several GPU servers, one inbox — three ``whisperd run`` nodes on one PostgreSQL
ledger, real subprocesses, real signals, a real database server (tests/postgres.py).

Every promise of one server holds for the cluster: each version done once with one set of
outputs, nothing lost when a node is killed, paused or the database restarts, and a node
whose lease ran out publishes and records nothing.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from daemon.outputs import is_temp_file
from tests.e2e.cluster import (
    claims_of,
    db_now,
    drop_copies,
    expected_outputs,
    make_nodes,
    query,
    running_on,
    wait_all_done,
)
from tests.e2e.service_harness import wait_for
from tests.synth import make_audio

LEASE = 3.0  # seconds: short, so that a kill and a pause play out within the test
RECLAIM_BOUND = LEASE + 2.0  # lease, then a quarter of it for the reclaim, a claim poll, slack


def visible_outputs(outbox: Path) -> list[str]:
    return sorted(p.relative_to(outbox).as_posix() for p in outbox.rglob("*")
                  if p.is_file() and not is_temp_file(p.name))  # fmt: skip


def assert_each_version_done_once(dsn: str, names: list[str]) -> None:
    """One done row per file, none other; every done claim within its lease."""
    rows = query(dsn, "SELECT convert_from(path, 'UTF8'), state FROM jobs ORDER BY id")
    done = [p for p, state in rows if state == "done"]
    assert sorted(done) == sorted(names), "each file must have exactly one done row"
    assert {state for _, state in rows} == {"done"}
    late = query(dsn, "SELECT job_id, node, ended_at - lease_until FROM claims "
                      "WHERE outcome = 'done' AND ended_at > lease_until")  # fmt: skip
    assert late == [], f"recorded done after the lease ran out: {late}"


def first_running(dsn: str, node: str) -> tuple[int, str]:
    """A job that ``node`` claimed a moment ago (so it is mid-job for a while yet)."""
    return wait_for(lambda: next(iter(running_on(dsn, node, fresher_than=0.12)), None),
                    timeout=60, interval=0.02)  # fmt: skip


def test_three_nodes_200_files_survive_a_kill_and_a_pause(tmp_path: Path, pg_dsn: str) -> None:
    clip = make_audio(tmp_path / "clip.wav", seconds=0.3)
    nodes = make_nodes(tmp_path, pg_dsn, 3, lease=LEASE, env={"WHISPERD_FAKE_DELAY": "0.3"})
    inbox, outbox = nodes[0].inbox, nodes[0].outbox
    names = [f"batch{i % 4}/file{i:03d}.wav" for i in range(200)]
    try:
        for node in nodes:
            node.start()
        drop_copies(clip, inbox, names[:180])
        wait_for(lambda: nodes[1].status()["counts"].get("done", 0) >= 30, timeout=90)

        # kill -9 the node that scans the inbox, mid-job; new files still come in.
        killed_job, _ = first_running(pg_dsn, "node0")
        killed_at = db_now(pg_dsn)
        nodes[0].proc.send_signal(signal.SIGKILL)
        nodes[0].proc.wait(timeout=10)
        drop_copies(clip, inbox, names[180:])
        claims = wait_for(lambda: (c := claims_of(pg_dsn, killed_job))[1:] and c, timeout=30)
        assert (claims[0][0], claims[0][3]) == ("node0", "expired")
        requeued, reclaimed = claims[0][2] - killed_at, claims[1][1] - killed_at
        assert requeued <= LEASE + 1.0, requeued  # the lease, then the next look (≤ lease / 4)
        assert claims[1][0] != "node0" and reclaimed <= RECLAIM_BOUND, reclaimed

        # SIGSTOP another for longer than its lease, then let it go on.
        paused_job, _ = first_running(pg_dsn, "node1")
        nodes[1].signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        try:
            wait_for(lambda: [c[3] for c in claims_of(pg_dsn, paused_job)] == ["expired", "done"],
                     timeout=30)  # fmt: skip
            time.sleep(max(0.0, 2 * LEASE - (time.monotonic() - paused_at)))  # a long pause
        finally:
            nodes[1].signal(signal.SIGCONT)
        wait_for(lambda: nodes[1].events("lease_lost_result_dropped"), timeout=30)

        wait_all_done(nodes[2], len(names), timeout=120)
        status = nodes[2].status()
        assert [(n["name"], n["alive"]) for n in status["nodes"]] == [
            ("node0", False), ("node1", True), ("node2", True)]  # fmt: skip
        assert sum(n["leader"] for n in status["nodes"]) == 1
        for node in nodes[1:]:
            assert node.stop() == 0
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
            node.close()

    assert_each_version_done_once(pg_dsn, names)
    assert visible_outputs(outbox) == expected_outputs(names)
    paused_claims = claims_of(pg_dsn, paused_job)
    assert paused_claims[0][0] == "node1" and paused_claims[1][0] != "node1"
    dropped = nodes[1].events("lease_lost_result_dropped")
    assert any(f"job {paused_job}" in e["error"] for e in dropped), dropped
    # The paused node published nothing of it: the outputs are those of the node that did it.
    done_by = query(pg_dsn, "SELECT node FROM jobs WHERE id = %s", (paused_job,))[0][0]
    assert done_by != "node1"


def test_a_database_restart_loses_nothing(tmp_path: Path, pg_dsn: str, pg_server) -> None:
    clip = make_audio(tmp_path / "clip.wav", seconds=0.3)
    nodes = make_nodes(tmp_path, pg_dsn, 3, lease=10.0, env={"WHISPERD_FAKE_DELAY": "0.3"})
    names = [f"f{i:02d}.wav" for i in range(60)]
    try:
        for node in nodes:
            node.start()
        drop_copies(clip, nodes[0].inbox, names)
        wait_for(lambda: nodes[0].status()["counts"].get("done", 0) >= 10, timeout=60)
        pg_server.restart(down_seconds=2.0)  # every connection drops; the services go on
        assert all(node.proc.poll() is None for node in nodes)
        wait_all_done(nodes[0], len(names), timeout=120)
        assert all(node.events("ledger_reconnected") for node in nodes)
        for node in nodes:
            assert node.stop() == 0
    finally:
        for node in nodes:
            node.close()
    assert_each_version_done_once(pg_dsn, names)
    assert visible_outputs(nodes[0].outbox) == expected_outputs(names)
    # An outage shorter than the lease costs nothing: no claim ran out, nothing ran twice.
    assert query(pg_dsn, "SELECT count(*) FROM claims WHERE outcome = 'expired'") == [(0,)]


def test_a_node_only_takes_the_models_it_serves(tmp_path: Path, pg_dsn: str) -> None:
    clip = make_audio(tmp_path / "clip.wav", seconds=0.3)
    rules = "folders: {large: {model: base}}\n"  # default tiny.en; large/ needs base
    nodes = make_nodes(tmp_path, pg_dsn, 2, lease=LEASE, extra=rules,
                       models=[["tiny.en"], None], env={"WHISPERD_FAKE_DELAY": "0.1"})  # fmt: skip
    names = [f"large/l{i}.wav" for i in range(6)] + [f"small/s{i}.wav" for i in range(6)]
    try:
        for node in nodes:
            node.start()
        drop_copies(clip, nodes[0].inbox, names)
        wait_all_done(nodes[0], len(names), timeout=60)
        status = nodes[0].status()
        assert [n["models"] for n in status["nodes"]] == [["tiny.en"], None]
        plain = nodes[1].cli("status").stdout
        assert "nodes:     2 (2 alive)" in plain and "ledger:    postgresql 127.0.0.1:" in plain
        assert plain.count(", scans the inbox") == 1 and "; tiny.en (host " in plain
        for node in nodes:
            assert node.stop() == 0
    finally:
        for node in nodes:
            node.close()
    claimed = query(pg_dsn, "SELECT DISTINCT c.node, j.model FROM claims AS c JOIN jobs AS j "
                            "ON j.id = c.job_id ORDER BY 1, 2")  # fmt: skip
    assert ("node0", "base") not in claimed  # the small node never took a base job
    assert ("node1", "base") in claimed
    assert_each_version_done_once(pg_dsn, names)


@pytest.mark.real_model
def test_three_nodes_transcribe_20_clips_with_tiny_en(tmp_path: Path, pg_dsn: str,
                                                       model_dir: Path) -> None:  # fmt: skip
    from tests.speech import clips, wer

    chosen = sorted(clips("en"), key=lambda c: c.duration)[:20]
    names = [f"talks/c{i:02d}{c.path.suffix}" for i, c in enumerate(chosen)]
    # One torch thread per node: three nodes share this machine's cores.
    nodes = make_nodes(tmp_path, pg_dsn, 3, lease=LEASE, fake=False,
                       env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})  # fmt: skip
    try:
        for node in nodes:
            node.start()
        for clip, name in zip(chosen, names, strict=True):
            drop_copies(clip.path, nodes[0].inbox, [name])
        wait_for(lambda: nodes[1].status()["counts"].get("done", 0) >= 4, timeout=300)
        killed_job, _ = first_running(pg_dsn, "node0")
        killed_at = db_now(pg_dsn)
        nodes[0].proc.send_signal(signal.SIGKILL)  # the real engine mid-window
        nodes[0].proc.wait(timeout=10)
        claims = wait_for(lambda: (c := claims_of(pg_dsn, killed_job))[0][2] and c, timeout=60)
        assert claims[0][2] - killed_at <= RECLAIM_BOUND  # queued again; claimed when a
        # worker is free (both may be busy with the real engine for a while)
        wait_all_done(nodes[1], len(names), timeout=420)
        for node in nodes[1:]:
            assert node.stop() == 0
    finally:
        for node in nodes:
            node.close()
    assert_each_version_done_once(pg_dsn, names)
    outbox = nodes[0].outbox
    assert visible_outputs(outbox) == expected_outputs(names)
    texts = [(outbox / n).with_suffix(".txt").read_text(encoding="utf-8") for n in names]
    error = wer([c.reference for c in chosen], texts, "en")
    assert error < 15.0, f"corpus WER {error:.1f} % (tiny.en alone: about 5 %)"
