"""Part 3: start-up reconciliation, RSS and idle CPU with a large, already-done inbox, and
with a media library in ``outputs_beside_source`` mode (:mod:`bench.library`).

The tree is ``folders × 10 subfolders × N`` tiny ``*.wav`` files (not audio: they are done).
Services run with the HTTP listener on (metrics and the status page, as shipped), unvisited;
:mod:`bench.operate` adds the cost of visits, a million-row ledger and idle memory.
The ledger is filled before the start: :meth:`Ledger.enqueue_many` with each file's
fingerprint as the service computes it (size, mtime_ns, inode on a local disk), then one SQL
``UPDATE`` marks every row done (the ledger has no bulk "complete"; claim/complete per file
would take one fsync each). Then, for inotify and polling, the service is started (process
start → READY=1 is the start-up time: the reconciliation scan runs before READY), its RSS
read after READY (no model is loaded yet), and its CPU time measured over an idle window with
both services running side by side.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench import common, library, operate

SUBFOLDERS = 10


def make_tree(
    inbox: Path, files: int, payload: bytes = b"RIFF-not-audio-0"
) -> list[tuple[str, Any]]:
    """Create the tree; (inbox-relative path, ledger Fingerprint) of every file."""
    from daemon.intake import facts
    from daemon.version import VersionPolicy

    policy = VersionPolicy(use_inode=facts(inbox).stable_inodes)
    per_sub = max(1, min(100, files // (SUBFOLDERS * 10)))
    folders = max(1, files // (SUBFOLDERS * per_sub))
    versions = []
    for f in range(folders):
        for s in range(SUBFOLDERS):
            rel_dir = f"d{f:03d}/s{s:02d}"
            os.makedirs(inbox / rel_dir)
            for n in range(per_sub):
                rel = f"{rel_dir}/f{n:03d}.wav"
                fd = os.open(inbox / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, payload)
                os.close(fd)
                st = os.stat(inbox / rel)
                versions.append((rel, policy.of(st)))
    return versions


def fill_ledger(state: Path, versions: list[tuple[str, Any]], model: str) -> float:
    """Every version known and done; seconds taken."""
    from daemon.queue import FILENAME, open_ledger

    started = time.monotonic()
    with open_ledger(state) as ledger:
        ledger.enqueue_many(versions, model=model, settings_json="{}")
    with sqlite3.connect(state / FILENAME) as conn:
        now = time.time()
        conn.execute(
            "UPDATE jobs SET state = 'done', started_at = ?, finished_at = ?, updated_at = ?, "
            "progress = 1 WHERE state = 'queued'",
            (now, now, now),
        )
    conn.close()
    return time.monotonic() - started


def queued(state: Path) -> int:
    """Rows the service queued (must be 0: every file was known)."""
    from daemon.queue import open_ledger

    with open_ledger(state, readonly=True) as ledger:
        counts = ledger.counts()
    return counts["queued"] + counts["running"]


def measure(work: Path, files: int, *, model: str, idle_seconds: float) -> dict[str, Any]:
    """One tree size: create, fill, start both modes, measure."""
    root = work / f"scale{files}"
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    started = time.monotonic()
    versions = make_tree(inbox, files)
    created = time.monotonic() - started
    filled = fill_ledger(root / "var-template", versions, model)
    out: dict[str, Any] = {"files": len(versions), "create_seconds": round(created, 1),
                           "ledger_fill_seconds": round(filled, 1)}  # fmt: skip
    services: dict[str, common.Service] = {}
    try:
        for mode, watch in (("inotify", ""), ("polling", "watch: {poll: always}\n")):
            mroot = root / mode
            mroot.mkdir()
            state = mroot / "var"
            shutil.copytree(root / "var-template", state)
            config = mroot / "whisperd.yaml"
            config.write_text(
                f"inbox: {inbox}\noutbox: {mroot / 'outbox'}\nstate_dir: {state}\n"
                f"model_dir: {common.MODELS}\ndefaults: {{model: {model}, language: en}}\n"
                'metrics: {listen: "127.0.0.1:0"}\n' + watch,
                encoding="utf-8",
            )
            service = common.Service(mroot, config)
            services[mode] = service
            ready = service.start()
            time.sleep(1.0)
            out[mode] = {"startup_seconds": round(ready, 2),
                         "rss_mb": round(common.tree_rss(service.pid) / 2**20, 1)}  # fmt: skip
        before = {mode: common.tree_cpu(s.pid) for mode, s in services.items()}
        t0 = time.monotonic()
        time.sleep(idle_seconds)
        window = time.monotonic() - t0
        for mode, s in services.items():
            cpu = common.tree_cpu(s.pid) - before[mode]
            out[mode]["idle_cpu_percent"] = round(100.0 * cpu / window, 3)
        inotify = services["inotify"]
        out["inotify"]["visited"] = operate.listener_under_use(
            inotify, inotify.page_url(), idle_seconds
        )
    finally:
        for s in services.values():
            s.stop()
    for mode in services:
        out[mode]["queued_by_service"] = queued(root / mode / "var")
    shutil.rmtree(root, ignore_errors=True)
    return out


def rows(state: Path) -> int:
    """Versions the service recorded so far (read straight from the file, no lock)."""
    try:
        with sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    except sqlite3.Error:
        return 0


def burst(work: Path, files: int, *, model: str) -> dict[str, Any]:
    """``files`` new files appear at once in a running service's inbox (a few folder renames,
    as a copy tool finishing would): seconds until every one is recorded in the ledger, and
    the longest silence of the watchdog meanwhile (pings are due every second)."""
    root = work / f"burst{files}"
    staging = root / "staging"
    staging.mkdir(parents=True)
    make_tree(staging, files, payload=b"not audio: intake only")
    config = common.write_config(root, model=model, language="en",
                                 watch="jobs: {max_attempts: 1}\n")  # fmt: skip
    with common.Service(root, config) as service:
        service.start(env={"WATCHDOG_USEC": "2000000"})
        started = time.monotonic()
        for top in sorted(staging.iterdir()):
            os.rename(top, service.inbox / top.name)
        while rows(service.state) < files:
            if time.monotonic() - started > 1800:
                raise TimeoutError(f"only {rows(service.state)} of {files} recorded")
            time.sleep(0.2)
        recorded = time.monotonic() - started
        pings = [t for t, m in service.received if "WATCHDOG=1" in m.splitlines()]
        during = [t for t in pings if started < t < started + recorded]
        marks = [started, *during, started + recorded]  # silence at either end counts too
        gaps = [b - a for a, b in itertools.pairwise(marks)]
    shutil.rmtree(root, ignore_errors=True)
    return {
        "files": files,
        "recorded_seconds": round(recorded, 2),
        "files_per_second": round(files / recorded, 1),
        "stable_seconds_included": common.SHIPPED_STABLE_SECONDS,
        "watchdog_pings": len(during),
        "longest_watchdog_gap_seconds": round(max(gaps), 2) if gaps else None,
    }


def baseline(work: Path, model: str) -> float:
    """Start-up time on an empty inbox: interpreter, imports, ledger, watcher."""
    root = work / "empty"
    root.mkdir(parents=True)
    config = common.write_config(root, model=model, language="en")
    with common.Service(root, config) as service:
        ready = service.start()
    shutil.rmtree(root, ignore_errors=True)
    return round(ready, 2)


def _library_ok(lib: dict[str, Any]) -> bool:
    first, again = lib["first_start"], lib["restart"]
    return (
        first["startup_seconds"] < 30 and again["startup_seconds"] < 30
        and first["queued"] == 0 and again["queued"] == 0 and lib["files_written"] == 0
        and first["idle_cpu_percent"] < 2 and again["idle_cpu_percent"] < 2
    )  # fmt: skip


def run(
    work: Path, *, model: str, sizes: list[int], idle_seconds: float, ledger_rows: int,
    unload_after: float,
) -> dict[str, Any]:  # fmt: skip
    """Every size in turn; targets checked on the largest."""
    result: dict[str, Any] = {"idle_window_seconds": idle_seconds,
                              "empty_inbox_startup_seconds": baseline(work, model)}  # fmt: skip
    for files in sizes:
        result[str(files)] = measure(work, files, model=model, idle_seconds=idle_seconds)
    result["burst"] = {str(n): burst(work, n, model=model) for n in sizes}
    videos = min(sizes)  # 10,000 in a full run
    result["library"] = library.measure(work, videos, model=model, idle_seconds=idle_seconds)
    result["ledger"] = operate.large_ledger(work, ledger_rows, model)
    result["idle_after_job"] = operate.idle_after_one_job(work, model, unload_after)
    largest = result[str(max(sizes))]
    modes = ("inotify", "polling")
    ledger, idle = result["ledger"], result["idle_after_job"]
    result["targets"] = {
        f"startup {max(sizes)} files < 30 s": all(
            largest[m]["startup_seconds"] < 30 for m in modes
        ),
        "idle CPU < 2% of a core": all(
            result[str(n)][m]["idle_cpu_percent"] < 2 for n in sizes for m in modes
        ),
        "RSS without the model < 300 MB": all(
            result[str(n)][m]["rss_mb"] < 300 for n in sizes for m in modes
        ),
        "watchdog fed during a burst (gap < 30 s)": all(
            (result["burst"][str(n)]["longest_watchdog_gap_seconds"] or 0) < 30 for n in sizes
        ),
        f"library of {videos} subtitled videos: start < 30 s, none queued, idle CPU < 2%": (
            _library_ok(result["library"])
        ),
        "idle CPU < 2% with a scrape every 15 s and the page open": all(
            result[str(n)]["inotify"]["visited"]["cpu_percent"] < 2 for n in sizes
        ),
        f"status < 2 s at {ledger['rows']:,} rows (process start included)": (
            ledger["status_command_seconds"] < 2
        ),
        "idle RSS after unloading < RSS with the model loaded": (
            idle["rss_mb_after_unload"] < idle["rss_mb_model_loaded"]
        ),
    }
    return result
