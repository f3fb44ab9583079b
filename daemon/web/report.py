"""The status report: what ``whisperd status`` prints and ``/api/status`` serves.

:func:`collect` reads the ledger read-only (safe while the service writes) and returns plain
data; ``whisperd status --json`` prints it, the HTTP listener serves its public form
(:func:`daemon.web.public.public_report`: the same document without the server's paths).
Every file name is shown escaped (:func:`daemon.text.display`), so a name that is not UTF-8
never breaks the output. Built from counters and indexed queries (the waiting, running and
failed rows, and today's done ones), so it stays fast with a million rows in the ledger;
only ``files`` (every file's final state, ``files=True``) reads the whole table.

Besides the files' states, it shows what the running service says of itself (the record
``service_status`` the service keeps in the ledger): a worker paused by an environment error
and why, the inbox missing, files waiting for their writer, their marker or the stability
window, entries refused.
"""

from __future__ import annotations

import json
import time
from typing import Any

from daemon.config import Config
from daemon.queue import FILENAME, Job, NodeStatus, location, open_ledger
from daemon.text import display
from daemon.web.summary import WINDOW, folder_summary, iso, midnight, throughput_last_hour

STATUS_KEY = "service_status"  # the record the running service keeps in the ledger's meta
FAILURES_SHOWN = 10
SKIPPED_SHOWN = 10  # the newest ones; --json lists every file with its state


def status_key(node: str | None) -> str:
    """Where a service keeps its record: one per node in a shared ledger."""
    return STATUS_KEY if node is None else f"{STATUS_KEY}:{node}"


def job_entry(job: Job) -> dict[str, Any]:
    """One job as the report shows it."""
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
        "enqueued_at": iso(job.enqueued_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "worker": job.worker,
    }


def collect(
    cfg: Config, pid: int | None, now: float | None = None, *, files: bool = True
) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data; ``files``: every file's final state too."""
    now = time.time() if now is None else now
    report: dict[str, Any] = {
        "service": {"running": pid is not None, "pid": pid if pid and pid > 0 else None},
        "service_status": {},
        "inbox": str(cfg.inbox),
        "outbox": str(cfg.outbox),
        "ledger": location(cfg),
        "generated_at": iso(now),
        "nodes": [],
    }
    shared = cfg.ledger.backend == "postgresql"
    if not shared and not (cfg.state_dir / FILENAME).exists():
        report.update(counts={}, queue_ready=0, running=[], recent_failures=[], incomplete=[],
                      skipped=[],
                      throughput={}, folders=[], throughput_last_hour=throughput_last_hour([], now),
                      notifications={})  # fmt: skip
        if files:
            report["files"] = []
        return report
    with open_ledger(cfg, readonly=True) as ledger:
        nodes = [_node(n, ledger.get_meta(status_key(n.name))) for n in ledger.nodes()]
        record = ledger.get_meta(STATUS_KEY) if pid is not None and not shared else None
        if shared:  # the node that scans the inbox tells why files wait
            record = next((n["record"] for n in nodes if n["leader"]), None)
        counts = ledger.counts()
        audio, busy = ledger.totals("done")
        current = ledger.current(since=min(midnight(now), now - WINDOW))
        report.update(
            counts=counts,
            queue_ready=ledger.queue_depth(now),
            running=[job_entry(j) for j in ledger.running()],
            recent_failures=[job_entry(j) for j in ledger.recent_failures(FAILURES_SHOWN)],
            incomplete=[job_entry(j) for j in ledger.in_state("incomplete", FAILURES_SHOWN)],
            skipped=[job_entry(j) for j in ledger.in_state("skipped", SKIPPED_SHOWN)],
            service_status=_service_status(record),
            nodes=nodes,
            throughput={
                "last_hour_audio_hours_per_hour": round(ledger.throughput(WINDOW, now), 3),
                "realtime_factor_while_busy": round(audio / busy, 2) if busy else None,
                "audio_hours_done": round(audio / 3600, 3),
            },
            folders=folder_summary(current, ledger.jobs, now),
            throughput_last_hour=throughput_last_hour(current, now),
            notifications=ledger.deliveries.counts(),
        )
        if files:
            report["files"] = [job_entry(j) for j in ledger.latest_per_path()]
    return report


def _node(node: NodeStatus, record: str | None) -> dict[str, Any]:
    """A node of a shared ledger, and what it last said of itself."""
    said = _service_status(record)
    return {
        "name": node.name, "host": node.host, "pid": node.pid, "version": node.version,
        "alive": node.alive, "heartbeat_seconds_ago": round(node.heartbeat_age, 1),
        "started_at": iso(node.started_at), "leader": node.leader, "running": node.running,
        "workers": list(node.workers), "models": list(node.models) if node.models else None,
        "paused": said.get("paused") or [], "record": record,
    }  # fmt: skip


def _service_status(record: str | None) -> dict[str, Any]:
    """What the running service last said of itself (its STATUS=, in detail)."""
    if not record:
        return {}
    try:
        data = json.loads(record)
    except ValueError:
        return {}
    keys = ("paused", "inbox_missing", "waiting", "refused", "status_page", "media_server")
    return {key: data.get(key) for key in keys}
