"""``whisperd status``: read the ledger (read-only, safe while the service runs) and report.

Besides the files' states, it shows what the running service says of itself (the record
:mod:`daemon.service.health` keeps in the ledger): a worker paused by an environment error
and why, the inbox missing, files waiting for their writer, their marker or the stability
window, entries refused. With a shared ledger (PostgreSQL) it shows the whole cluster:
every node with its last heartbeat, whether it scans the inbox, its running jobs and what
it says of itself, and the queue of all of them. Every file name is shown escaped
(:func:`daemon.text.display`), so a name that is not UTF-8 never breaks the output, the
JSON included.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from daemon.config import Config
from daemon.lock import holder_pid
from daemon.queue import FILENAME, Job, NodeStatus, location, open_ledger
from daemon.service.health import status_key
from daemon.text import display

FAILURES_SHOWN = 10
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
        "ledger": location(cfg),
        "nodes": [],
    }
    shared = cfg.ledger.backend == "postgresql"
    if not shared and not (cfg.state_dir / FILENAME).exists():
        report.update(counts={}, running=[], recent_failures=[], incomplete=[], files=[],
                      throughput={})  # fmt: skip
        return report
    with open_ledger(cfg, readonly=True) as ledger:
        counts = ledger.counts()
        running = ledger.running()
        failures = ledger.recent_failures(FAILURES_SHOWN)
        files = ledger.latest_per_path()
        incomplete = ledger.in_state("incomplete", FAILURES_SHOWN)
        record = ledger.get_meta(status_key(None)) if pid is not None and not shared else None
        rate = ledger.throughput(WINDOW, now)
        ready = ledger.queue_depth(now)
        nodes = [_node(n, ledger.get_meta(status_key(n.name))) for n in ledger.nodes()]
    if shared:  # the node that scans the inbox tells why files wait
        record = next((n["record"] for n in nodes if n["leader"]), None)
    done = [j for j in files if j.state == "done" and j.processing_seconds]
    busy = sum(j.processing_seconds or 0.0 for j in done)
    audio = sum(j.audio_seconds or 0.0 for j in done)
    report.update(
        counts=counts,
        queue_ready=ready,
        running=[_job(j) for j in running],
        recent_failures=[_job(j) for j in failures],
        incomplete=[_job(j) for j in incomplete],
        service_status=_service_status(record),
        throughput={
            "last_hour_audio_hours_per_hour": round(rate, 3),
            "realtime_factor_while_busy": round(audio / busy, 2) if busy else None,
            "audio_hours_done": round(audio / 3600, 3),
        },
        files=[_job(j) for j in files],
        nodes=nodes,
    )
    return report


def _node(node: NodeStatus, record: str | None) -> dict[str, Any]:
    """A node of a shared ledger, and what it last said of itself."""
    said = _service_status(record)
    return {
        "name": node.name, "host": node.host, "pid": node.pid, "version": node.version,
        "alive": node.alive, "heartbeat_seconds_ago": round(node.heartbeat_age, 1),
        "started_at": _when(node.started_at), "leader": node.leader, "running": node.running,
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
    return {key: data.get(key) for key in ("paused", "inbox_missing", "waiting", "refused")}


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
    print(f"ledger:    {report['ledger']}")
    if not report["counts"]:
        print("files:     none yet (no service has run on this ledger)")
        return
    _print_service_status(report["service_status"])
    _print_nodes(report["nodes"])
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
    if report["recent_failures"]:
        print("recent failures:")
        for job in report["recent_failures"]:
            print(f"  {job['path']}: {job['error']}  (attempts {job['attempts']})")
        print("  retry with: whisperd retry PATH...  or  whisperd retry --failed")


def _print_nodes(nodes: list[dict[str, Any]]) -> None:
    """The servers sharing the ledger (PostgreSQL only)."""
    if not nodes:
        return
    alive = sum(n["alive"] for n in nodes)
    print(f"nodes:     {len(nodes)} ({alive} alive)")
    for n in nodes:
        state = "alive" if n["alive"] else "NOT RESPONDING"
        role = ", scans the inbox" if n["leader"] else ""
        models = ", ".join(n["models"]) if n["models"] else "any model"
        print(f"  {n['name']}: {state}, heartbeat {n['heartbeat_seconds_ago']:.0f} s ago{role}; "
              f"running {n['running']}; workers {', '.join(n['workers'])}; {models} "
              f"(host {n['host']}, pid {n['pid']})")  # fmt: skip
        for pause in n["paused"]:
            print(f"    PAUSED: {pause['worker']}: {pause['reason']}")


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
