"""``whisperd status``: read the ledger (read-only, safe while the service runs) and report.

Besides the files' states, it shows what the running service says of itself (the record
:mod:`daemon.service.health` keeps in the ledger): a worker paused by an environment error
and why, the inbox missing, files waiting for their writer, their marker or the stability
window or to be checked for subtitles, entries refused, and how the media server's rescans
went. Skipped files (a video that has subtitles already) are listed with what was found.
Every file name is shown escaped (:func:`daemon.text.display`), so
a name that is not UTF-8 never breaks the output, the JSON included.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from daemon.config import Config
from daemon.lock import holder_pid
from daemon.queue import FILENAME, Job, open_ledger
from daemon.service.health import STATUS_KEY
from daemon.text import display

FAILURES_SHOWN = 10
SKIPPED_SHOWN = 10  # the newest ones; --json lists every file with its state
WINDOW = 3600.0  # seconds: throughput is over the last hour


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _job(job: Job) -> dict[str, Any]:
    return {
        "path": display(job.path),
        "state": job.state,
        "attempts": job.attempts,
        "model": job.model,
        "language": job.language,
        "audio_seconds": job.audio_seconds,
        "processing_seconds": job.processing_seconds,
        "progress": job.progress,
        "outputs": [display(o) for o in job.outputs],
        "error": display(job.last_error) if job.last_error else None,
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
        "service_status": {},
        "inbox": str(cfg.inbox),
        "outbox": str(cfg.outbox),
        "ledger": str(cfg.state_dir / FILENAME),
    }
    if not (cfg.state_dir / FILENAME).exists():
        report.update(counts={}, running=[], recent_failures=[], incomplete=[], skipped=[],
                      files=[], throughput={})  # fmt: skip
        return report
    with open_ledger(cfg.state_dir, readonly=True) as ledger:
        counts = ledger.counts()
        running = ledger.running()
        failures = ledger.recent_failures(FAILURES_SHOWN)
        files = ledger.latest_per_path()
        incomplete = ledger.in_state("incomplete", FAILURES_SHOWN)
        skipped = ledger.in_state("skipped", SKIPPED_SHOWN)
        record = ledger.get_meta(STATUS_KEY) if pid is not None else None
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
        incomplete=[_job(j) for j in incomplete],
        skipped=[_job(j) for j in skipped],
        service_status=_service_status(record),
        throughput={
            "last_hour_audio_hours_per_hour": round(rate, 3),
            "realtime_factor_while_busy": round(audio / busy, 2) if busy else None,
            "audio_hours_done": round(audio / 3600, 3),
        },
        files=[_job(j) for j in files],
    )
    return report


def _service_status(record: str | None) -> dict[str, Any]:
    """What the running service last said of itself (its STATUS=, in detail)."""
    if not record:
        return {}
    try:
        data = json.loads(record)
    except ValueError:
        return {}
    keys = ("paused", "inbox_missing", "waiting", "refused", "media_server")
    return {key: data.get(key) for key in keys}


def show(cfg: Config, *, as_json: bool) -> int:
    """Print the report (``--json``: every file's final state) for the running service."""
    report = collect(cfg, holder_pid(cfg.state_dir))
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    _print(report)
    return 0


def _print(report: dict[str, Any]) -> None:
    """The report for a person."""
    service = report["service"]
    state = f"running (pid {service['pid']})" if service["running"] else "not running"
    print(f"service:   {state}")
    print(f"inbox:     {report['inbox']}")
    print(f"outbox:    {report['outbox']}")
    if not report["counts"]:
        print("ledger:    none yet (the service has not run on this state_dir)")
        return
    _print_service_status(report["service_status"])
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
    if report["incomplete"]:
        print("incomplete (waiting for the rest of the file; taken again when it changes):")
        for job in report["incomplete"]:
            print(f"  {job['path']}: {job['error']}")
    if report["skipped"]:
        print("skipped (have subtitles already; 'whisperd retry PATH' looks again):")
        for job in report["skipped"]:
            print(f"  {job['path']}: {job['error']}")
    if report["recent_failures"]:
        print("recent failures:")
        for job in report["recent_failures"]:
            print(f"  {job['path']}: {job['error']}  (attempts {job['attempts']})")
        print("  retry with: whisperd retry PATH...  or  whisperd retry --failed")


def _print_service_status(status: dict[str, Any]) -> None:
    for pause in status.get("paused") or []:
        print(f"PAUSED:    {pause['worker']}: {pause['reason']} "
              f"(retrying in {pause['retry_in']:.0f} s; no file is failed for this)")  # fmt: skip
    if status.get("inbox_missing"):
        print("INBOX MISSING: the service waits for the inbox folder to come back")
    waiting = status.get("waiting") or {}
    if waiting:
        print("waiting:   " + ", ".join(f"{n} {why}" for why, n in waiting.items()))
    for entry in status.get("refused") or []:
        print(f"refused:   {display(entry)}")
    server = status.get("media_server")
    if server:
        print(f"media server: {server.get('refreshed', 0)} folders rescanned, "
              f"{server.get('pending', 0)} pending, {server.get('dropped', 0)} given up "
              f"({server.get('auth_failures', 0)} refused tokens; see the log)")  # fmt: skip
