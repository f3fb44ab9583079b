"""Operating the service, end to end with the fake engine (the real model: test_operate_real):
metrics scraped and parsed, /api/status against ``status --json``, folder_idle once per
batch, a failing webhook that never stops transcription, requeue, a deleted source,
housekeeping at start-up."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.notify import verify
from tests.e2e.service_harness import ROOT, Service, stays_false, wait_for
from tests.notify.server import LocalServer
from tests.synth import make_audio


@pytest.fixture
def service(tmp_path: Path):
    svc = Service(tmp_path)
    yield svc
    svc.close()


@pytest.fixture
def receiver():
    server = LocalServer()
    yield server
    server.close()


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def samples(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    _, body = get(url + "metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def drop(folder: Path, name: str, seconds: float = 1.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".staging-{name}"
    make_audio(staging.with_suffix(".wav"), seconds=seconds)
    return Path(shutil.move(staging.with_suffix(".wav"), folder / name))


def test_metrics_and_the_status_api(service: Service) -> None:
    service.write_config(extra="folders: {talks: {language: en}}\n")
    service.start()
    url = service.url()
    drop(service.inbox / "talks", "a.wav", 1.0)
    drop(service.inbox / "talks", "b.wav", 2.0)
    (service.inbox / "other").mkdir()
    (service.inbox / "other" / "bad.wav").write_bytes(b"RIFF not really a wav file at all")
    wait_for(lambda: service.all_settled(3), timeout=60)
    s = wait_for(
        lambda: (
            (m := samples(url))
            and m.get(("whisperd_jobs_finished_total", (("outcome", "done"), ("rule", "talks"))))
            == 2
            and m
        )
    )
    assert s[("whisperd_jobs", (("state", "done"),))] == 2
    assert s[("whisperd_jobs", (("state", "failed"),))] == 1
    assert s[("whisperd_jobs_finished_total", (("outcome", "failed"), ("rule", "default")))] == 1
    assert s[("whisperd_audio_seconds_total", (("rule", "talks"),))] == pytest.approx(3.0, 0.01)
    assert s[("whisperd_realtime_factor_count", ())] == 2
    assert s[("whisperd_queue_oldest_age_seconds", ())] == 0
    assert s[("whisperd_last_successful_scan_timestamp_seconds", ())] > 0
    assert s[("whisperd_worker_busy_seconds_total", (("worker", "0:auto"),))] > 0
    assert s[("whisperd_ledger_up", ())] == 1
    assert any(k[0] == "whisperd_errors_total" for k in s)  # the broken file's error class
    assert next(k for k in s if k[0] == "whisperd_build_info")[1][1] == ("engine", "openai-whisper")
    assert not any("bad.wav" in str(k) for k in s)  # never a path as a label
    # /api/status?files=1 is status --json without the server's paths
    _, body = get(url + "api/status?files=1")
    public, full = json.loads(body), service.status()
    assert set(public) == set(full) - {"inbox", "outbox", "ledger"}
    assert public["counts"] == full["counts"] and public["folders"] != []
    inbox = f"{service.inbox}/"
    for mine, theirs in zip(public["files"], full["files"], strict=True):
        theirs = {**theirs, "error": theirs["error"] and theirs["error"].replace(inbox, "")}
        assert mine == theirs  # the same, except the server's paths in messages
    assert str(service.root) not in body.decode()
    _, page = get(url)
    assert b"<title>Transcriptions" in page


def test_folder_idle_once_per_batch_and_signed_events(service: Service, receiver) -> None:
    service.write_config(extra=f"notify:\n  - webhook: {receiver.url}\n    secret: s3cret\n")
    service.start()
    for n in range(3):
        drop(service.inbox / "batch", f"{n}.wav", 0.5)
    wait_for(lambda: service.all_settled(3), timeout=60)
    got = receiver.receiver
    assert got.wait_for(lambda reqs: any(b"folder_idle" in r.body for r in reqs), 30)
    stays_false(lambda: sum(b"folder_idle" in r.body for r in got.requests) > 1, 2.0)
    docs = [json.loads(r.body) for r in got.requests]
    assert sorted(d["event"] for d in docs) == ["done", "done", "done", "folder_idle"]
    [idle] = [d for d in docs if d["event"] == "folder_idle"]
    assert (idle["folder"], idle["files"], idle["done"], idle["failed"]) == ("batch", 3, 3, 0)
    done = next(d for d in docs if d["event"] == "done")
    assert done["file"].startswith("batch/") and done["outputs"]
    assert all(not o.startswith("/") for o in done["outputs"])  # outbox-relative
    for request in got.requests:
        assert verify("s3cret", request.headers["X-Whisperd-Signature"], request.body)
    assert service.status()["notifications"] == {"pending": 0, "sent": 4, "given_up": 0}


def test_a_failing_endpoint_never_stops_transcription(service: Service, receiver) -> None:
    receiver.receiver.default = 503
    service.write_config(extra=f"notify:\n  - webhook: {receiver.url}\n    timeout: 1\n")
    service.start()
    for n in range(3):
        drop(service.inbox, f"{n}.wav", 0.5)
    wait_for(lambda: service.all_settled(3), timeout=60)
    assert receiver.receiver.wait_for(lambda reqs: len(reqs) >= 1, 10)
    pending = service.status()["notifications"]["pending"]
    assert pending >= 3  # stored, retried later with a backoff; nothing was lost
    assert samples(service.url())[("whisperd_notifications_pending", ())] >= 3
    assert [e for e in service.events("notification_target_failing")]


def test_requeue_transcribes_done_files_again_keeping_the_old_outputs_meanwhile(
    service: Service,
) -> None:
    service.start()
    drop(service.inbox / "x", "a.wav", 1.0)
    wait_for(lambda: service.all_settled(1), timeout=60)
    txt = service.outbox / "x" / "a.txt"
    assert "fake en transcript" in txt.read_text()
    service.stop()
    service.write_config(defaults={"language": "de", "model": "base"})
    service.start(env={"WHISPERD_FAKE_DELAY": "2"})
    result = service.cli("requeue", "x/a.wav")
    assert result.returncode == 0 and "1 done file queued again" in result.stdout, result
    wait_for(lambda: service.states()["x/a.wav"] == "running", timeout=30)
    assert "fake en transcript" in txt.read_text()  # the old outputs stay meanwhile
    wait_for(lambda: service.states()["x/a.wav"] == "done", timeout=30)
    assert "fake de transcript" in txt.read_text()
    [job] = service.jobs()
    assert (job.model, job.attempts) == ("base", 0)
    missing = service.cli("requeue", "nope.wav")
    assert missing.returncode == 0 and "0 done files queued again" in missing.stdout
    usage = service.cli("requeue")
    assert usage.returncode == 2 and "--all-done" in usage.stderr


def test_a_deleted_source_keeps_its_outputs_and_loses_its_error_file(service: Service) -> None:
    service.start()
    good = drop(service.inbox, "good.wav", 0.5)
    bad = service.inbox / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file at all")
    wait_for(lambda: service.all_settled(2), timeout=60)
    service.error_text("bad.wav")
    outputs = sorted(p.name for p in service.outbox.iterdir() if p.name.startswith("good."))
    good.unlink()
    bad.unlink()
    wait_for(lambda: service.states()["bad.wav"] == "gone", timeout=30)
    assert not (service.outbox / "bad.wav.error.txt").exists()
    assert not (service.outbox / "bad.error.txt").exists()
    assert sorted(p.name for p in service.outbox.iterdir() if p.name.startswith("good.")) == outputs
    assert service.states()["good.wav"] == "done"  # kept until jobs.history_days prunes it


def test_housekeeping_prunes_the_history_of_deleted_files(service: Service) -> None:
    service.write_config(jobs={"history_days": 0.00002})  # about 1.7 s
    text = service.config.read_text().replace("2e-05", "0.00002")  # YAML 1.1 needs the dot
    service.config.write_text(text)
    service.start()
    gone = drop(service.inbox, "gone.wav", 0.5)
    drop(service.inbox, "kept.wav", 0.5)
    wait_for(lambda: service.all_settled(2), timeout=60)
    gone.unlink()
    service.stop()
    finished = max(job.finished_at or 0 for job in service.jobs())
    wait_for(lambda: time.time() - finished > 2, timeout=10)  # older than history_days
    service.start()
    [done] = wait_for(lambda: [e for e in service.events("housekeeping_done") if e["pruned"]], 30)
    assert done["pruned"] == 1
    assert set(service.states()) == {"kept.wav"}  # the file still there keeps its row
    assert (service.outbox / "gone.txt").exists()  # outputs are never touched


def test_a_port_in_use_stops_the_start_with_one_line(service: Service) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service.write_config(extra=f'metrics: {{listen: "127.0.0.1:{port}"}}\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(service.cli_command("run"), capture_output=True, text=True,
                                env=env, timeout=60)  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"whisperd: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another whisperd or exporter?); choose another port in metrics.listen"
    )
    assert "Traceback" not in result.stderr
