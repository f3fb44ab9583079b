"""``whisperd status``: read the ledger (read-only, safe while the service runs) and report."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from daemon.config import Config
from daemon.lock import holder_pid
from daemon.queue import FILENAME, Job, open_ledger

FAILURES_SHOWN = 10
WINDOW = 3600.0  # seconds: throughput is over the last hour


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _job(job: Job) -> dict[str, Any]:
    return {
        "path": job.path,
        "state": job.state,
        "attempts": job.attempts,
        "model": job.model,
        "language": job.language,
        "audio_seconds": job.audio_seconds,
        "processing_seconds": job.processing_seconds,
        "progress": job.progress,
        "outputs": list(job.outputs),
        "error": job.last_error,
        "error_kind": job.error_kind,
        "enqueued_at": _when(job.enqueued_at),
        "started_at": _when(job.started_at),
        "finished_at": _when(job.finished_at),
        "worker": job.worker,
    }


def collect(cfg: Config, pid: int | None, now: float | None = None) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data."""
    now = time.time() if now is None else now
    report: dict[str, Any] = {
        "service": {"running": pid is not None, "pid": pid if pid and pid > 0 else None},
        "inbox": str(cfg.inbox),
        "outbox": str(cfg.outbox),
        "ledger": str(cfg.state_dir / FILENAME),
    }
    if not (cfg.state_dir / FILENAME).exists():
        report.update(counts={}, running=[], recent_failures=[], files=[], throughput={})
        return report
    with open_ledger(cfg.state_dir, readonly=True) as ledger:
        counts = ledger.counts()
        running = ledger.running()
        failures = ledger.recent_failures(FAILURES_SHOWN)
        files = ledger.latest_per_path()
        rate = ledger.throughput(WINDOW, now)
        ready = ledger.queue_depth(now)
    done = [j for j in files if j.state == "done" and j.processing_seconds]
    busy = sum(j.processing_seconds or 0.0 for j in done)
    audio = sum(j.audio_seconds or 0.0 for j in done)
    report.update(
        counts=counts,
        queue_ready=ready,
        running=[_job(j) for j in running],
        recent_failures=[_job(j) for j in failures],
        throughput={
            "last_hour_audio_hours_per_hour": round(rate, 3),
            "realtime_factor_while_busy": round(audio / busy, 2) if busy else None,
            "audio_hours_done": round(audio / 3600, 3),
        },
        files=[_job(j) for j in files],
    )
    return report


def show(cfg: Config, *, as_json: bool) -> int:
    """Print the report (``--json``: every file's final state) for the running service."""
    report = collect(cfg, holder_pid(cfg.state_dir))
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    service = report["service"]
    state = f"running (pid {service['pid']})" if service["running"] else "not running"
    print(f"service:   {state}")
    print(f"inbox:     {report['inbox']}")
    print(f"outbox:    {report['outbox']}")
    if not report["counts"]:
        print("ledger:    none yet (the service has not run on this state_dir)")
        return 0
    counts = report["counts"]
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"files:     {shown or 'none'}")
    for job in report["running"]:
        print(f"running:   {job['path']}  {job['progress']:.0%}  ({job['worker']}, {job['model']})")
    t = report["throughput"]
    print(
        f"throughput: {t['last_hour_audio_hours_per_hour']} audio h/h over the last hour; "
        f"{t['realtime_factor_while_busy'] or '-'}x realtime while busy; "
        f"{t['audio_hours_done']} audio hours done"
    )
    if report["recent_failures"]:
        print("recent failures:")
        for job in report["recent_failures"]:
            print(f"  {job['path']}: {job['error']}  (attempts {job['attempts']})")
        print("  retry with: whisperd retry PATH...  or  whisperd retry --failed")
    return 0
