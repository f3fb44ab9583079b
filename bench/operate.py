"""Part 3, continued: what operating the service costs at scale.

* **A large ledger** (1,000,000 rows; 20,000 in smoke mode): ``whisperd status`` as a user
  runs it (process start included), the status report the page and ``/api/status`` serve
  (:func:`daemon.web.collect` without the file list), one metrics snapshot, and the daily
  pruning of that ledger with a tenth of its files deleted. Rows are written with SQL in
  one transaction (the fastest way to a million; the counters' triggers run as for any
  insert): 98 % done over the last 100 days, 1 % failed, 1 % queued, in 100 × 100 folders.
* **Idle after one job**: a service transcribes one clip, then sits idle; RSS with the model
  loaded, then after ``models.unload_after`` unloaded it (gc and ``malloc_trim`` included),
  beside the RSS right after READY (no model yet).
* **The listener under use**: idle CPU while Prometheus scrapes every 15 s and a status page
  polls every 5 s (the scale part's idle figures are with the listener on, unvisited).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import common

JFK = common.ROOT.parent / "shared" / "speech" / "openai_whisper" / "jfk.flac"


def fill_big_ledger(state: Path, rows: int) -> float:
    """A ledger of ``rows`` versions (see the module docstring); seconds taken."""
    from daemon.queue import FILENAME, open_ledger

    started = time.monotonic()
    open_ledger(state).close()  # created at the current schema (triggers included)
    conn = sqlite3.connect(state / FILENAME, isolation_level=None)
    conn.execute("BEGIN")
    now = time.time()
    batch = []
    for i in range(rows):
        path = f"d{i // 10000:03d}/s{(i // 100) % 100:02d}/f{i % 100:03d}.wav".encode()
        state_ = "queued" if i % 100 == 0 else "failed" if i % 100 == 1 else "done"
        finished = None if state_ == "queued" else now - (i % 100) * 86400
        outputs = json.dumps([path.decode()[:-4] + ".txt"])
        batch.append((path, 1000 + i, i, i, state_, now - 200 * 86400, finished, now, "tiny.en",
                      "{}", outputs, 12.0, 3.0, "en"))  # fmt: skip
        if len(batch) == 10000 or i == rows - 1:
            conn.executemany(
                "INSERT INTO jobs (path, size, mtime_ns, inode, state, enqueued_at, finished_at, "
                "updated_at, model, settings, outputs, audio_seconds, processing_seconds, "
                "language) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
            batch = []
    conn.execute("COMMIT")
    conn.close()
    return time.monotonic() - started


def _timed(fn: Any, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(min(times), 3)


def large_ledger(work: Path, rows: int, model: str) -> dict[str, Any]:
    """``status``, the page's report, a metrics snapshot and pruning on ``rows`` rows."""
    from daemon.config import load_config
    from daemon.queue import open_ledger
    from daemon.web import collect

    root = work / f"ledger{rows}"
    (root / "inbox").mkdir(parents=True)
    filled = fill_big_ledger(root / "var", rows)
    config = common.write_config(root, model=model, language="en")
    cfg = load_config(config)
    cmd = [sys.executable, "-m", "daemon", "status", "-c", str(config)]
    env = {**os.environ, "PYTHONPATH": str(common.ROOT)}
    status_wall = _timed(lambda: subprocess.run(cmd, env=env, capture_output=True, check=True))
    report = _timed(lambda: collect(cfg, 1, files=False))
    with open_ledger(root / "var") as ledger:
        snapshot = _timed(
            lambda: (ledger.counts(), ledger.queue_depth(), ledger.oldest_queued_at())
        )
        # a tenth of the folders deleted from the inbox, the rest present: prune 90 days
        present = {f"d{d:03d}" for d in range(rows // 10000) if d % 10}
        t0 = time.perf_counter()
        pruned = ledger.prune_history(time.time() - 90 * 86400,
                                      lambda rel: rel.split("/")[0] in present)  # fmt: skip
        prune_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        vacuumed = ledger.vacuum_if_worthwhile()
        vacuum_seconds = time.perf_counter() - t0
    size = (root / "var" / "ledger.sqlite3").stat().st_size
    return {
        "rows": rows,
        "fill_seconds": round(filled, 1),
        "status_command_seconds": status_wall,
        "status_report_seconds": report,
        "metrics_snapshot_seconds": snapshot,
        "pruned_rows": pruned,
        "prune_seconds": round(prune_seconds, 2),
        "vacuumed": vacuumed,
        "vacuum_seconds": round(vacuum_seconds, 2),
        "ledger_mb_after": round(size / 2**20, 1),
    }


def idle_after_one_job(work: Path, model: str, unload_after: float) -> dict[str, Any]:
    """RSS after READY, after one job (model loaded), and after the model was unloaded."""
    root = work / "idle-after-job"
    root.mkdir(parents=True)
    config = common.write_config(root, model=model, language="en",
                                 watch=f"models: {{unload_after: {unload_after}}}\n")  # fmt: skip
    with common.Service(root, config) as service:
        service.start()
        time.sleep(1.0)
        ready = common.tree_rss(service.pid)
        common.copy_clip(JFK, service.inbox, "jfk")
        common.wait_for(lambda: common.outputs_done(service.outbox, ["jfk"]), timeout=300)
        time.sleep(1.0)
        loaded = common.tree_rss(service.pid)
        common.wait_for(lambda: "models_unloaded" in service.log(), timeout=unload_after + 60)
        time.sleep(1.0)
        unloaded = common.tree_rss(service.pid)
    mb = 2**20
    return {"unload_after_seconds": unload_after, "rss_mb_after_ready": round(ready / mb, 1),
            "rss_mb_model_loaded": round(loaded / mb, 1),
            "rss_mb_after_unload": round(unloaded / mb, 1)}  # fmt: skip


def listener_under_use(service: common.Service, url: str, seconds: float) -> dict[str, Any]:
    """Idle CPU of ``service`` while a scraper (15 s) and an open page (5 s) poll it.

    The page is opened first (one status request: the report's first build, timed apart as
    ``first_load_seconds``); the window measures the steady state that follows, when the
    report is rebuilt at most 1 % of the time (``daemon.web.http.StatusCache``).
    """
    t_first = time.monotonic()
    with urllib.request.urlopen(url + "api/status", timeout=120) as response:
        response.read()
    first_load = time.monotonic() - t_first
    stop = threading.Event()
    hits = {"metrics": 0, "status": 0, "errors": 0}
    slowest = [0.0]

    def poll(path: str, every: float, key: str) -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(url + path, timeout=60) as response:
                    response.read()
                hits[key] += 1
            except OSError:
                hits["errors"] += 1
            slowest[0] = max(slowest[0], time.monotonic() - t0)
            stop.wait(every)

    threads = [threading.Thread(target=poll, args=("metrics", 15.0, "metrics")),
               threading.Thread(target=poll, args=("api/status", 5.0, "status"))]  # fmt: skip
    before = common.tree_cpu(service.pid)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    cpu = common.tree_cpu(service.pid) - before
    return {"cpu_percent": round(100 * cpu / (time.monotonic() - t0), 3), "requests": hits,
            "first_load_seconds": round(first_load, 2),
            "slowest_request_seconds": round(slowest[0], 2),
            "rss_mb": round(common.tree_rss(service.pid) / 2**20, 1)}  # fmt: skip
