"""Metrics as a scraper reads them: parsed with prometheus_client's own parser."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from daemon.web import Metrics


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a full render."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode("utf-8")):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def make(**kw) -> Metrics:
    return Metrics(version="0.1.0", engine="faster-whisper", device="cpu", **kw)


def test_job_finished_counts_by_outcome_and_rule_and_observes_realtime_factor() -> None:
    m = make(rules=["es", "en/*"])
    m.job_finished("done", "es", 600.0, 100.0)
    m.job_finished("done", "es", 60.0, 20.0)
    m.job_finished("failed", "en/*", None, 5.0)
    m.job_finished("done", None, 30.0, 1.0)
    s = samples(m)
    assert s[("whisperd_jobs_finished_total", (("outcome", "done"), ("rule", "es")))] == 2
    assert s[("whisperd_jobs_finished_total", (("outcome", "failed"), ("rule", "en/*")))] == 1
    assert s[("whisperd_jobs_finished_total", (("outcome", "done"), ("rule", "default")))] == 1
    assert s[("whisperd_audio_seconds_total", (("rule", "es"),))] == 660.0
    assert s[("whisperd_processing_seconds_total", (("outcome", "failed"), ("rule", "en/*")))] == 5
    assert s[("whisperd_realtime_factor_count", ())] == 3
    assert s[("whisperd_realtime_factor_bucket", (("le", "4.0"),))] == 1  # 3x
    assert s[("whisperd_realtime_factor_bucket", (("le", "8.0"),))] == 2  # 6x
    assert s[("whisperd_realtime_factor_bucket", (("le", "32.0"),))] == 3  # 30x


def test_labels_stay_bounded_never_a_file_path() -> None:
    m = make(rules=["es"])
    m.job_finished("done", "es/private/interview.mp3", 1.0, 1.0)
    m.job_finished("exploded", "es", 1.0, 1.0)
    for i in range(80):
        m.error(f"Kind{i}")
    s = samples(m)
    rules = {dict(k[1]).get("rule") for k in s if k[0] == "whisperd_jobs_finished_total"}
    assert rules == {"other", "es"}
    assert s[("whisperd_jobs_finished_total", (("outcome", "other"), ("rule", "es")))] == 1
    kinds = {dict(k[1])["kind"] for k in s if k[0] == "whisperd_errors_total"}
    assert len(kinds) == 51 and "other" in kinds
    assert s[("whisperd_errors_total", (("kind", "other"),))] == 30


def test_errors_model_loads_scan_and_build_info() -> None:
    m = make()
    m.error(MemoryError("x"))
    m.error(MemoryError)
    m.error("CorruptMediaError")
    m.model_loaded("whisper", 2.5)
    m.model_loaded("whisper", 1.5)
    m.scan_done(1764600000.0)
    s = samples(m)
    assert s[("whisperd_errors_total", (("kind", "MemoryError"),))] == 2
    assert s[("whisperd_errors_total", (("kind", "CorruptMediaError"),))] == 1
    assert s[("whisperd_model_loads_total", (("engine", "whisper"),))] == 2
    assert s[("whisperd_model_load_seconds_total", (("engine", "whisper"),))] == 4.0
    assert s[("whisperd_last_successful_scan_timestamp_seconds", ())] == 1764600000.0
    build = (("device", "cpu"), ("engine", "faster-whisper"), ("version", "0.1.0"))
    assert s[("whisperd_build_info", build)] == 1
    m.set_build_info("0.1.0", "whisper", "cuda")
    assert ("whisperd_build_info", build) not in samples(m)  # one series, replaced


def test_worker_busy_seconds_and_ratio_include_the_open_interval() -> None:
    clock = Clock()
    m = make(clock=clock)
    m.worker_busy("0:auto", True)
    clock.t += 30
    m.worker_busy("0:auto", False)
    clock.t += 30
    m.worker_busy("0:auto", True)
    clock.t += 15  # busy 30 + 15 of the 75 s observed
    assert value(m, "whisperd_worker_busy", worker="0:auto") == 1
    assert value(m, "whisperd_worker_busy_seconds_total", worker="0:auto") == 45
    assert value(m, "whisperd_worker_busy_ratio", worker="0:auto") == pytest.approx(0.6)
    clock.t += 600  # still busy: the last 300 s were all busy
    assert value(m, "whisperd_worker_busy_ratio", worker="0:auto") == 1.0
    m.worker_busy("0:auto", False)
    clock.t += 150
    assert value(m, "whisperd_worker_busy_ratio", worker="0:auto") == pytest.approx(0.5)
    assert value(m, "whisperd_worker_busy", worker="0:auto") == 0


class Snapshot:
    """A ledger snapshot whose running job moves on with every scrape."""

    def __init__(self) -> None:
        self.progress = 0.1
        self.fail_with: Exception | None = None

    def __call__(self) -> dict:
        if self.fail_with is not None:
            raise self.fail_with
        self.progress += 0.1
        return {
            "counts": {"queued": 4, "running": 1, "failed": 2, "done": 3},
            "queue_ready": 4,
            "oldest_queued_at": time.time() - 60,
            "running": [{"worker": "0:auto", "progress": self.progress}],
        }


def test_ledger_gauges_are_computed_at_scrape_time() -> None:
    m = make(snapshot=Snapshot())
    s = samples(m)
    assert s[("whisperd_ledger_up", ())] == 1
    assert s[("whisperd_jobs", (("state", "queued"),))] == 4
    assert s[("whisperd_jobs", (("state", "failed"),))] == 2
    assert s[("whisperd_jobs", (("state", "gone"),))] == 0
    assert s[("whisperd_jobs", (("state", "incomplete"),))] == 0  # every state, always
    assert s[("whisperd_queue_ready_jobs", ())] == 4
    assert s[("whisperd_queue_oldest_age_seconds", ())] == pytest.approx(60, abs=5)
    first = s[("whisperd_job_progress_ratio", (("worker", "0:auto"),))]
    assert value(m, "whisperd_job_progress_ratio", worker="0:auto") > first


def test_a_failing_snapshot_does_not_fail_the_scrape() -> None:
    snapshot = Snapshot()
    snapshot.fail_with = RuntimeError("database is locked")
    m = make(snapshot=snapshot)
    m.job_finished("done", None, 1.0, 1.0)
    s = samples(m)
    assert s[("whisperd_ledger_up", ())] == 0
    assert s[("whisperd_jobs_finished_total", (("outcome", "done"), ("rule", "default")))] == 1


def test_private_registry_and_process_metrics() -> None:
    a, b = make(), make()  # two instances: no "Duplicated timeseries" from a global registry
    a.job_finished("done", None, 1.0, 1.0)
    assert (
        "whisperd_jobs_finished_total",
        (("outcome", "done"), ("rule", "default")),
    ) not in samples(b)
    assert "whisperd_jobs_finished" not in {m.name for m in REGISTRY.collect()}
    assert value(a, "process_resident_memory_bytes") > 10_000_000


def test_concurrent_events_are_all_counted() -> None:
    m = make()

    def work() -> None:
        for _ in range(500):
            m.job_finished("done", None, 1.0, 0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert value(m, "whisperd_jobs_finished_total", outcome="done", rule="default") == 2000
    assert value(m, "whisperd_audio_seconds_total", rule="default") == 2000.0


def test_openmetrics_when_asked() -> None:
    body, content_type = make().render_for("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    body, content_type = make().render_for(None)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
