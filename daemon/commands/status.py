"""``whisperd status``: read the ledger (read-only, safe while the service runs) and report.

The report is :func:`daemon.web.report.collect`, the same the HTTP listener serves at
``/api/status`` (there without the server's paths, and without ``files`` unless asked with
``?files=1``). ``--json`` prints it whole, with every file's final state; without it, a
summary for a person, built without reading every row. Besides the files' states, it shows
what the running service says of itself (the record :mod:`daemon.service.health` keeps in
the ledger): a worker paused by an environment error and why, the inbox missing, files
waiting for their writer, their marker or the stability window or to be checked for
subtitles, entries refused, and how the media server's rescans went. Skipped files (a video
that has subtitles already) are listed with what was found. With a shared ledger
(PostgreSQL) it shows the whole cluster: every node with its last heartbeat, whether it
scans the inbox, its running jobs and what it says of itself, and the queue of all of them.
Every file name is shown escaped (:func:`daemon.text.display`), so a name that is not UTF-8
never breaks the output.
"""

from __future__ import annotations

import json
from typing import Any

from daemon.config import Config
from daemon.lock import holder_pid
from daemon.text import display
from daemon.web import collect


def show(cfg: Config, *, as_json: bool) -> int:
    """Print the report (``--json``: every file's final state) for the running service."""
    report = collect(cfg, holder_pid(cfg.state_dir), files=as_json)
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
    if report["skipped"]:
        print("skipped (have subtitles already; 'whisperd retry PATH' looks again):")
        for job in report["skipped"]:
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
    server = status.get("media_server")
    if server:
        print(f"media server: {server.get('refreshed', 0)} folders rescanned, "
              f"{server.get('pending', 0)} pending, {server.get('dropped', 0)} given up "
              f"({server.get('auth_failures', 0)} refused tokens; see the log)")  # fmt: skip
    if status.get("status_page"):
        print(f"page:      {status['status_page']}  (metrics at {status['status_page']}metrics)")
