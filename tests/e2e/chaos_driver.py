"""Chaos for ``whisperd run``: kills, stops, a vanishing inbox, a full outbox, rewrites.

Shared by tests/e2e/test_chaos.py (fake engine, short) and bench/chaos.py (tiny.en, full).
tests/e2e/chaos_plan.py lays out a seeded timeline of events from a ``Plan``; :class:`Driver`
runs the real service (tests/e2e/chaos_env.py) and carries the events out:

* ``drop``: a file renamed into the inbox from a staging folder, as a copy tool would;
* ``kill``: SIGKILL, then a restart after a random fraction of a second (so kills land in
  start-up too); the first two (early in the run) and half of the rest wait for a job to
  run and strike a random moment into it.
  A stop that could bring a version to ``crash_limit`` crashes is postponed (the other
  events go on): random kills must not look like a file that brings the service down
  (that file fails on purpose, and is not what this run checks);
* ``term``: SIGTERM, the exit awaited (status 0 expected), then a restart (postponed alike);
* ``away`` / ``back``: the inbox renamed away and back (a share that drops off);
* ``fill`` / ``free``: the outbox's filesystem, a small tmpfs, filled to ENOSPC, then freed;
* ``rewrite``: a file rewritten while its job runs (in place, or replaced by a rename), each
  version with another audio length, so the outputs tell which version they came from.

:meth:`Driver.run` ends with a clean start that lets everything settle and a graceful stop;
:func:`tests.e2e.chaos_checks.verify` then checks the guarantees on what is left.
"""

from __future__ import annotations

import heapq
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from tests.e2e.chaos_env import ChaosService, OutboxFs
from tests.e2e.chaos_plan import ChaosResult, Event, FileRecord, Media, Plan, file_name, timeline

TICK = 0.05  # seconds between looks at the service while waiting
MAX_UNEXPECTED_EXITS = 5  # a service that keeps dying by itself ends the run
POSTPONE = 0.5  # seconds an event waits when it cannot happen yet
AIM_TRIES = 10  # times an aimed kill is postponed at most, waiting for a job to run
FULL_PATIENCE = 20.0  # seconds the outbox stays full at most, waiting for a job to meet it


class Driver:
    """Runs one plan against a real service in ``root``; a context manager (unmounts)."""

    def __init__(self, root: Path, plan: Plan, media: Media, *, fake: bool) -> None:
        self.plan, self.media = plan, media
        self.rng = random.Random(plan.seed * 7919 + 1)  # choices made during the run
        self.fs = OutboxFs(root / "outfs", plan.outbox_mb)
        self.inbox, self.away, self.staging = root / "inbox", root / "inbox-away", root / "staging"
        self.archive = root / "archive" if plan.on_success == "move" else None
        jobs: dict = {"stop_timeout": plan.stop_timeout, "crash_limit": plan.crash_limit,
                      "on_success": plan.on_success}  # fmt: skip
        if self.archive is not None:
            jobs["archive_dir"] = str(self.archive)
        self.service = ChaosService(root, self.fs.outbox, jobs, fake=fake, model=plan.model,
                                    fake_delay=plan.fake_delay, defaults=plan.defaults)  # fmt: skip
        records = [FileRecord(i, file_name(i, media.suffix)) for i in range(plan.files)]
        self.files = {r.rel: r for r in records}
        self.by_index = records
        self.deferred: list[int] = []  # drops waiting for the inbox to come back
        self.stats: Counter = Counter()
        self.lines: list[str] = []
        self.findings: list[str] = []
        self.is_away = self.is_full = False
        self.full_since, self.pauses_before = 0.0, 0  # when the outbox filled; pauses then
        self.t0 = time.monotonic()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.service.close()
        self.fs.teardown()

    # --- the run ---

    def run(self) -> ChaosResult:
        """The plan's events, then a clean start that settles, then a graceful stop."""
        self.fs.setup()
        if self.archive is not None:
            self.archive.mkdir(parents=True, exist_ok=True)
        events = timeline(self.plan)
        self.t0 = time.monotonic()
        self._note(f"seed {self.plan.seed}; outbox tmpfs: {self.fs.skip_reason or 'mounted'}")
        for event in [e for e in events if e.at == 0.0]:
            self._do(event)
        self.service.restart()
        queue = [e for e in events if e.at > 0.0]
        heapq.heapify(queue)
        while queue:
            event = heapq.heappop(queue)
            self._wait_until(event.at)
            if self._do(event) is False:  # an event that must wait: the others go on meanwhile
                if event.arg * POSTPONE < self.plan.stop_patience:
                    later = max(event.at, time.monotonic() - self.t0) + POSTPONE
                    heapq.heappush(queue, Event(later, event.seq, event.kind, event.arg + 1))
                else:
                    self.stats[f"{event.kind}s_skipped"] += 1
                    self._note(f"{event.kind} skipped: it could not happen for too long")
        settled = self._settle()
        return ChaosResult(
            plan=self.plan, inbox=self.inbox, outbox=self.fs.outbox, archive=self.archive,
            files=self.files, stats=self.stats, timeline=self.lines, findings=self.findings,
            disk_full_skipped=self.fs.skip_reason, settled=settled,
            seconds=time.monotonic() - self.t0, service=self.service,
        )  # fmt: skip

    def _do(self, event: Event) -> bool | None:
        """Carry out one event; False: not now (a stop would fail a file), postpone it."""
        actions = {"drop": lambda: self._drop(event.arg), "kill": lambda: self._kill(event.arg),
                   "term": self._term, "away": self._away, "back": self._back,
                   "fill": self._fill, "free": self._free, "rewrite": self._rewrite}  # fmt: skip
        return actions[event.kind]()

    def _note(self, message: str) -> None:
        self.lines.append(f"{time.monotonic() - self.t0:7.2f}s {message}")

    def _wait_until(self, at: float) -> None:
        while time.monotonic() < self.t0 + at:
            self._supervise()
            time.sleep(TICK)

    def _supervise(self) -> None:
        """A service that died without being killed is a finding; it is started again."""
        proc = self.service.proc
        if proc is None or proc.poll() is None:
            return
        self.stats["unexpected_exits"] += 1
        tail = "\n".join(self.service.log().splitlines()[-15:])
        at = time.monotonic() - self.t0
        self.findings.append(f"the service exited by itself with status {proc.returncode} "
                             f"(at {at:.2f} s); log tail:\n{tail}")  # fmt: skip
        if self.stats["unexpected_exits"] > MAX_UNEXPECTED_EXITS:
            raise RuntimeError("the service keeps exiting by itself:\n" + self.findings[-1])
        self.service.restart()

    # --- files ---

    def _drop(self, index: int) -> None:
        rec = self.by_index[index]
        if self.is_away:
            self.deferred.append(index)
            return
        blob = self.media.blob(rec.index, 0)
        staged = self.staging / rec.rel
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(blob.data)
        target = self.inbox / rec.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, target)
        rec.versions.append(blob)
        self.stats["drops"] += 1

    def _rewrite(self, *, reason: str = "", wait: bool = True) -> None:
        target = self._rewrite_target(self.plan.rewrite_wait if wait else 0.0)
        if target is None:
            self._note("rewrite: no file to rewrite")
            return
        rec, mid_job = target
        blob = self.media.blob(rec.index, len(rec.versions))
        path = self.inbox / rec.rel
        in_place = self.archive is not None or self.rng.random() < 0.5
        try:
            if in_place:
                _write_in_place(path, blob.data)
            else:
                staged = self.staging / (rec.rel + ".new")
                staged.parent.mkdir(parents=True, exist_ok=True)
                staged.write_bytes(blob.data)
                os.replace(staged, path)
        except FileNotFoundError:  # moved to the archive, or the inbox went away meanwhile
            self._note(f"rewrite of {rec.rel}: the file is gone")
            return
        rec.versions.append(blob)
        self.stats["rewrites"] += 1
        self.stats["rewrites_mid_job"] += mid_job
        self.stats["rewrites_for_full_disk"] += bool(reason)
        how = "in place" if in_place else "by rename"
        self._note(f"rewrite {rec.rel} {how} to {blob.seconds} s"
                   f"{' during its job' if mid_job else ''}{reason}")  # fmt: skip

    def _rewrite_target(self, wait: float) -> tuple[FileRecord, bool] | None:
        """A file whose job runs now (waiting up to ``wait`` s for one), else any present one."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not self.is_away:
            for row in self.service.rows() or []:
                rec = self.files.get(row.path)
                if self.service.mine(row) and rec is not None and self._rewritable(rec):
                    return rec, True
            self._supervise()
            time.sleep(TICK / 2)
        candidates = [r for r in self.by_index if self._rewritable(r)]
        return (self.rng.choice(candidates), False) if candidates else None

    def _rewritable(self, rec: FileRecord) -> bool:
        return (not self.is_away and 0 < len(rec.versions) < self.plan.max_versions
                and (self.inbox / rec.rel).exists())  # fmt: skip

    # --- the service ---

    def _stop_safe(self) -> bool:
        """Whether a stop now cannot bring any version to ``crash_limit`` crashes.

        A version left running by a killed process will count a crash when the next start
        recovers it, so its crashes count one more. Only the current process changes the
        ledger meanwhile and it adds no crash, so the answer holds until the next stop.
        """
        rows = self.service.rows()
        return rows is not None and all(
            self._crashes_after_stop(r) < self.plan.crash_limit for r in rows
        )

    def _crashes_after_stop(self, row) -> int:
        if row.state == "queued":
            return row.crashes + 1  # claimed before the stop lands, at worst
        if row.state == "running":
            return row.crashes + 1 + (not self.service.mine(row))  # + its pending recovery
        return 0

    def _kill(self, tries: int) -> bool:
        if not self._stop_safe():
            return False
        # The first kills are always aimed, so that every run strikes some jobs mid-way: one
        # that finds no job running waits for one (postponed, while the drops go on; a fast
        # engine may have emptied the queue before the next drop comes).
        forced = self.stats["kills_aimed"] < self.plan.aimed_first
        aimed = (forced or self.rng.random() < self.plan.aimed) and self._aim()
        if forced and not aimed and tries < AIM_TRIES and self._work_ahead():
            return False
        ready = self.service.ready()
        self.service.kill()
        hit = self._count_interrupted("kill")
        self.stats["kills_aimed"] += aimed
        self.stats["kills"] += 1
        self._note(f"SIGKILL ({'aimed' if aimed else 'ready' if ready else 'starting'}){hit}")
        time.sleep(self.rng.uniform(0.0, 0.5))
        self.service.restart()
        return True

    def _work_ahead(self) -> bool:
        """Whether a job may still run: a file is still to be dropped, or the ledger holds a
        version not yet done."""
        if self.stats["drops"] < self.plan.files:
            return True
        return any(r.state in ("queued", "running") for r in self.service.rows() or [])

    def _aim(self) -> bool:
        """Wait (1 s at most: the other events wait meanwhile) for a job of this process to
        run; then a random moment into it, if that job is still running then (a short job may
        have ended: aim at the next)."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            running = {r.path for r in self.service.rows() or [] if self.service.mine(r)}
            if running:
                time.sleep(self.rng.uniform(0.0, self.plan.aim_into))
                rows = self.service.rows() or []
                if any(self.service.mine(r) and r.path in running for r in rows):
                    return True
                continue
            self._supervise()
            time.sleep(TICK / 2)
        return False

    def _term(self) -> bool:
        if not self._stop_safe():
            return False
        ready = self.service.ready()
        code = self._graceful_stop()
        self.stats["terms"] += 1
        if code != 0 and (ready or code != -signal.SIGTERM):
            self.findings.append(f"SIGTERM: exit status {code} (ready: {ready}), not 0")
        hit = self._count_interrupted("term")
        self._note(f"SIGTERM ({'ready' if ready else 'starting'}) → exit {code}{hit}")
        time.sleep(self.rng.uniform(0.0, 0.3))
        self.service.restart()
        return True

    def _graceful_stop(self) -> int | None:
        """SIGTERM and wait; the exit status (None: did not exit, killed after a while)."""
        proc = self.service.proc
        assert proc is not None
        limit = self.plan.stop_timeout + 10 + 30  # stop_timeout + STOP_GRACE + a margin
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.findings.append(f"SIGTERM: still running after {limit} s; killed")
            self.service.kill()
            return None

    def _count_interrupted(self, how: str) -> str:
        """After the process is gone: the versions it was running (the ledger's word)."""
        rows = self.service.rows() or []
        running = [r for r in rows if self.service.mine(r)]
        for row in running:
            if row.path in self.files:
                self.files[row.path].killed_mid_job += how == "kill"
            self.stats[f"{how}s_mid_job"] += 1
            self.stats[f"{how}s_mid_commit"] += row.staged is not None
            if how == "term" and self.service.proc and self.service.proc.returncode == 0:
                self.findings.append(f"a graceful stop left {row.path} running in the ledger")
        return "".join(f"; {r.path} was running{' (staged)' if r.staged else ''}"
                       for r in running)  # fmt: skip

    # --- the inbox and the outbox ---

    def _away(self) -> None:
        if self.is_away:
            return
        os.rename(self.inbox, self.away)
        self.is_away = True
        self.stats["inbox_renames"] += 1
        self._note("inbox renamed away")

    def _back(self) -> None:
        if not self.is_away:
            return
        if self.inbox.exists():  # the service made a new inbox while the old one was away
            self.stats["inbox_recreated"] += 1
            leftovers = [p for p in self.inbox.rglob("*") if p.is_file()]
            if leftovers:
                self.findings.append(f"files appeared in a new inbox: {leftovers}")
                subprocess.run(["cp", "-a", f"{self.inbox}/.", str(self.away)], check=True)
                subprocess.run(["rm", "-rf", str(self.inbox)], check=True)
        os.rename(self.away, self.inbox)  # replaces an empty directory of that name
        self.is_away = False
        self._note(f"inbox back; {len(self.deferred)} deferred drop(s)")
        for index in self.deferred:
            self._drop(index)
        self.deferred.clear()

    def _fill(self) -> bool:
        if not self.fs.mounted:
            self._note(f"disk full skipped: {self.fs.skip_reason}")
            return True
        if self.is_full:  # the last period is still on (no job has met it yet): one longer
            self.stats["disk_fills_merged"] += 1
            self._note("outbox still full from the last fill")
            return True
        written = self.fs.fill()
        self.is_full, self.full_since = True, time.monotonic()
        self.pauses_before = self._disk_full_pauses()
        self.stats["disk_fills"] += 1
        self._note(f"outbox filesystem filled ({written // 1024} KiB)")
        rows = self.service.rows() or []
        if not any(r.state in ("queued", "running") for r in rows):
            self._rewrite(reason=" (work for the full disk)", wait=False)
        return True

    def _free(self, *, force: bool = False) -> bool:
        """Free the outbox once a job met the full disk (or after FULL_PATIENCE seconds)."""
        if not self.is_full:
            return True
        met = self._disk_full_pauses() > self.pauses_before
        if not (force or met or time.monotonic() - self.full_since > FULL_PATIENCE):
            return False  # kills kept the service in start-up: no job has met it yet
        self.fs.free()
        self.is_full = False
        self._note(f"outbox filesystem freed{'' if met else ' (no job met it)'}")
        return True

    def _disk_full_pauses(self) -> int:
        return sum("disk full" in str(e.get("error")) for e in self.service.events("worker_paused"))

    # --- the end ---

    def _settle(self) -> bool:
        """Inbox back, disk freed; a clean start; wait until all is done; a graceful stop."""
        self._back()
        self._free(force=True)
        if self.service.running():
            self._graceful_stop()
        self.service.restart()
        deadline = time.monotonic() + self.plan.settle_timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if self.service.ready() and self._settled():
                quiet_since = quiet_since or now
                if now - quiet_since >= 2.5:  # longer than a rescan interval
                    break
            else:
                quiet_since = None
            self._supervise()
            time.sleep(0.1)
        settled = quiet_since is not None and time.monotonic() - quiet_since >= 2.5
        self._note(f"settled: {settled}")
        code = self._graceful_stop()
        if code != 0:
            self.findings.append(f"final SIGTERM: exit status {code}, not 0")
        return settled

    def _settled(self) -> bool:
        rows = self.service.rows()
        if rows is None or any(r.state in ("queued", "running") or r.source_action
                               for r in rows):  # fmt: skip
            return False
        if self.archive is not None:  # move: every source has left the inbox
            return not any(p.is_file() for p in self.inbox.rglob("*"))
        done = {(r.path, r.fingerprint.size, r.fingerprint.mtime_ns)
                for r in rows if r.state == "done"}  # fmt: skip
        for rec in self.by_index:
            try:
                st = (self.inbox / rec.rel).stat()
            except FileNotFoundError:
                continue  # a lost source: the checks report it
            if (rec.rel, st.st_size, st.st_mtime_ns) not in done:
                return False
        return True


def _write_in_place(path: Path, data: bytes) -> None:
    """Rewrite an existing file through the same inode, in three writes (never creates it)."""
    with open(path, "r+b") as fh:
        fh.truncate(0)
        step = max(1, len(data) // 3 + 1)
        for start in range(0, len(data), step):
            fh.write(data[start : start + step])
            fh.flush()
            time.sleep(0.02)
