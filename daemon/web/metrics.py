"""Prometheus metrics of whisperd, on a private registry.

Owns :class:`Metrics`: the events the service reports (a job finished, a model loaded, a
scan completed, an error, a worker became busy or idle) and :meth:`Metrics.render`.
Gauges that the ledger already knows (jobs by state, age of the oldest waiting job,
progress of each running job) are not pushed: a :class:`LedgerCollector` calls the
service's ``snapshot()`` at scrape time. The snapshot is a dict::

    {"counts": {"queued": 2, "running": 1, ...},       # jobs by state
     "queue_ready": 2,                                 # queued and due now (optional)
     "oldest_queued_at": 1764583200.0 | None,          # epoch seconds
     "running": [{"worker": "0:auto", "progress": 0.42}, ...],
     "notifications_pending": 0}                       # (optional)

Label values are bounded: a folder rule must be one of the configured rule keys (else
``other``; never a file path), outcomes come from a fixed set, and any other label keeps
at most :data:`MAX_LABEL_VALUES` distinct values before folding the rest into ``other``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.registry import Collector

from daemon.queue import STATES

log = structlog.get_logger(__name__)

#: How a job left the running state: done; failed for good; failed with attempts left
#: (retry); an environment error put it back and paused the worker (paused); a stop put it
#: back (cancelled); its file changed or vanished before it ran (superseded, gone).
OUTCOMES = frozenset(
    {"done", "failed", "retry", "paused", "cancelled", "superseded", "gone", "skipped"}
)
DEFAULT_RULE = "default"  # a file no folder rule matched
OTHER = "other"
MAX_LABEL_VALUES = 50
RTF_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
BUSY_WINDOW = 300.0  # seconds: whisperd_worker_busy_ratio looks this far back

Snapshot = Mapping[str, Any]


class _Bounded:
    """Label values from ``allowed`` (when given) or the first ``limit`` seen; else OTHER."""

    def __init__(self, allowed: Iterable[str] | None = None, limit: int = MAX_LABEL_VALUES):
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = str(value)
        if self.allowed is not None:
            return text if text in self.allowed else OTHER
        with self._lock:
            if text in self._seen or len(self._seen) < self.limit:
                self._seen.add(text)
                return text
        return OTHER


class LedgerCollector(Collector):
    """Gauges computed at scrape time from ``snapshot()``; a failing snapshot yields
    ``whisperd_ledger_up 0`` instead of failing the scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot], clock: Callable[[], float] = time.time):
        self._snapshot = snapshot
        self._clock = clock
        self._worker = _Bounded()

    def describe(self) -> Iterator[Metric]:
        """The families without samples (for the registry's duplicate check)."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("whisperd_ledger_up", "1 if the last scrape could read the ledger"),
            GaugeMetricFamily("whisperd_jobs", "Jobs in the ledger by state", labels=["state"]),
            GaugeMetricFamily("whisperd_queue_ready_jobs", "Queued jobs that may run now"),
            GaugeMetricFamily(
                "whisperd_queue_oldest_age_seconds", "Age of the oldest queued job (0: none)"
            ),
            GaugeMetricFamily(
                "whisperd_job_progress_ratio",
                "Progress of the running job (0..1)",
                labels=["worker"],
            ),
            GaugeMetricFamily(
                "whisperd_notifications_pending", "Notifications stored and not yet delivered"
            ),
        )

    def collect(self) -> Iterator[Metric]:
        """Read the snapshot once and yield every ledger gauge."""
        up, jobs, ready, oldest, progress, pending = self._families()
        try:
            snap = self._snapshot()
        except Exception as err:
            log.warning("metrics snapshot failed", error=str(err), kind=type(err).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        counts = snap.get("counts") or {}
        for state in STATES:
            jobs.add_metric([state], float(counts.get(state, 0)))
        if "queue_ready" in snap:
            ready.add_metric([], float(snap["queue_ready"]))
        queued_at = snap.get("oldest_queued_at")
        oldest.add_metric([], max(0.0, self._clock() - queued_at) if queued_at else 0.0)
        by_worker = {
            self._worker(j.get("worker") or "?"): j.get("progress") or 0.0
            for j in snap.get("running") or []
        }
        for worker, fraction in sorted(by_worker.items()):
            progress.add_metric([worker], float(fraction))
        if "notifications_pending" in snap:
            pending.add_metric([], float(snap["notifications_pending"]))
        yield from (up, jobs, ready, oldest, progress, pending)


class _WorkerClock(Collector):
    """Busy state, busy seconds (including the open interval) and busy ratio per worker."""

    def __init__(self, clock: Callable[[], float], window: float):
        self._clock = clock
        self._window = window
        self._lock = threading.Lock()
        self._since: dict[str, float | None] = {}  # worker -> busy since (None: idle)
        self._first: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self._spans: dict[str, deque[tuple[float, float]]] = {}

    def set(self, worker: str, busy: bool) -> None:
        now = self._clock()
        with self._lock:
            self._first.setdefault(worker, now)
            self._total.setdefault(worker, 0.0)
            spans = self._spans.setdefault(worker, deque())
            since = self._since.get(worker)
            if busy and since is None:
                self._since[worker] = now
            elif not busy and since is not None:
                self._total[worker] += now - since
                spans.append((since, now))
                self._since[worker] = None
            while spans and spans[0][1] < now - self._window:
                spans.popleft()

    def _ratio(self, worker: str, now: float) -> float:
        start = max(now - self._window, self._first[worker])
        if now <= start:
            return 0.0
        busy = sum(min(e, now) - max(s, start) for s, e in self._spans[worker] if e > start)
        since = self._since.get(worker)
        if since is not None:
            busy += now - max(since, start)
        return min(1.0, busy / (now - start))

    def describe(self) -> Iterator[Metric]:
        """The families without samples."""
        yield from self._families()

    def _families(self) -> tuple[Metric, ...]:
        return (
            GaugeMetricFamily(
                "whisperd_worker_busy", "1 while the worker runs a job", labels=["worker"]
            ),
            CounterMetricFamily(
                "whisperd_worker_busy_seconds", "Seconds spent running jobs", labels=["worker"]
            ),
            GaugeMetricFamily(
                "whisperd_worker_busy_ratio",
                f"Share of the last {self._window:.0f} s spent running jobs",
                labels=["worker"],
            ),
        )

    def collect(self) -> Iterator[Metric]:
        """One sample per worker and family, computed now."""
        busy, seconds, ratio = self._families()
        now = self._clock()
        with self._lock:
            for worker, since in sorted(self._since.items()):
                busy.add_metric([worker], 0.0 if since is None else 1.0)
                open_s = 0.0 if since is None else now - since
                seconds.add_metric([worker], self._total[worker] + open_s)
                ratio.add_metric([worker], self._ratio(worker, now))
        yield from (busy, seconds, ratio)


class Metrics:
    """The service's metrics; every method is thread-safe and cheap (no I/O)."""

    def __init__(
        self,
        *,
        version: str,
        engine: str,
        device: str,
        snapshot: Callable[[], Snapshot] | None = None,
        rules: Iterable[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        process_metrics: bool = True,
    ) -> None:
        """``rules``: the configured folder-rule keys (None: any, at most 50 values)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._rule = _Bounded(None if rules is None else [*rules, DEFAULT_RULE])
        self._kind = _Bounded()
        self._engine = _Bounded()
        self._workers = _WorkerClock(clock, BUSY_WINDOW)
        self.registry.register(self._workers)
        if snapshot is not None:
            self.registry.register(LedgerCollector(snapshot))
        if process_metrics:
            ProcessCollector(namespace="", registry=self.registry)
            PlatformCollector(registry=self.registry)
        self._define(self.registry)
        self.set_build_info(version, engine, device)

    def _define(self, reg: CollectorRegistry) -> None:
        self._finished = Counter(
            "whisperd_jobs_finished",
            "Jobs finished, by outcome and folder rule",
            ["outcome", "rule"],
            registry=reg,
        )
        self._audio = Counter(
            "whisperd_audio_seconds",
            "Audio seconds transcribed (done jobs)",
            ["rule"],
            registry=reg,
        )
        self._processing = Counter(
            "whisperd_processing_seconds",
            "Wall seconds spent on jobs",
            ["rule", "outcome"],
            registry=reg,
        )
        self._rtf = Histogram(
            "whisperd_realtime_factor",
            "Audio seconds per processing second of done jobs",
            buckets=RTF_BUCKETS,
            registry=reg,
        )
        self._loads = Counter("whisperd_model_loads", "Models loaded", ["engine"], registry=reg)
        self._load_s = Counter(
            "whisperd_model_load_seconds", "Seconds spent loading models", ["engine"], registry=reg
        )
        self._scan = Gauge(
            "whisperd_last_successful_scan_timestamp_seconds",
            "When the last full inbox scan succeeded (epoch)",
            registry=reg,
        )
        self._errors = Counter("whisperd_errors", "Errors by class", ["kind"], registry=reg)
        self._build = Gauge(
            "whisperd_build_info",
            "Version, engine and device (always 1)",
            ["version", "engine", "device"],
            registry=reg,
        )

    def set_rules(self, rules: Iterable[str]) -> None:
        """Replace the allowed rule keys (after a configuration reload)."""
        self._rule = _Bounded([*rules, DEFAULT_RULE])

    def set_build_info(self, version: str, engine: str, device: str) -> None:
        """Replace the single build-info series (the engine or device may change on reload)."""
        self._build.clear()
        self._build.labels(version=version, engine=engine, device=device).set(1)

    def job_finished(
        self, outcome: str, rule: str | None, audio_s: float | None, processing_s: float | None
    ) -> None:
        """A job left the running state. ``rule``: the folder-rule key (None: no rule)."""
        outcome = outcome if outcome in OUTCOMES else OTHER
        rule_label = self._rule(rule or DEFAULT_RULE)
        self._finished.labels(outcome=outcome, rule=rule_label).inc()
        if processing_s is not None and processing_s >= 0:
            self._processing.labels(rule=rule_label, outcome=outcome).inc(processing_s)
        if outcome != "done" or audio_s is None or audio_s < 0:
            return
        self._audio.labels(rule=rule_label).inc(audio_s)
        if processing_s and processing_s > 0 and audio_s > 0:
            self._rtf.observe(audio_s / processing_s)

    def model_loaded(self, engine: str, seconds: float) -> None:
        """A model was loaded by ``engine`` in ``seconds``."""
        label = self._engine(engine)
        self._loads.labels(engine=label).inc()
        self._load_s.labels(engine=label).inc(max(0.0, seconds))

    def scan_done(self, ts: float | None = None) -> None:
        """A full scan of the inbox succeeded at ``ts`` (epoch seconds; default now)."""
        self._scan.set(time.time() if ts is None else ts)

    def error(self, kind: str | BaseException | type[BaseException]) -> None:
        """Count an error by class name (an exception, its class, or a name)."""
        if isinstance(kind, BaseException):
            kind = type(kind).__name__
        elif isinstance(kind, type):
            kind = kind.__name__
        self._errors.labels(kind=self._kind(kind)).inc()

    def worker_busy(self, worker: str, busy: bool) -> None:
        """``worker`` started (True) or stopped (False) running a job."""
        self._workers.set(worker, busy)

    def render(self) -> bytes:
        """The Prometheus text exposition format (0.0.4) of every metric."""
        return generate_latest(self.registry)

    def render_for(self, accept: str | None) -> tuple[bytes, str]:
        """The body and content type a scraper with this ``Accept`` header asked for."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
