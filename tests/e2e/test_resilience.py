"""Issue: one bad file cannot stop the service or the queue; what the service remembers
stays true; reasons are visible (``whisperd run`` in a subprocess, real signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.service_harness import Service, wait_for
from tests.synth import make_audio


@pytest.fixture
def service(tmp_path: Path):
    svc = Service(tmp_path)
    yield svc
    svc.close()


def restarted_like_systemd(service: Service, env: dict[str, str]) -> None:
    """Start again whenever the process died (Restart=on-failure), until it stays up."""
    if service.proc is None or service.proc.poll() is not None:
        service.start(env=env)


def test_a_file_that_kills_the_service_fails_after_the_crash_limit(service: Service):
    env = {"WHISPERD_FAKE_CRASH_SECONDS": "2.5"}  # a 2.5 s file takes the process down
    make_audio(service.inbox / "poison.wav", seconds=2.5)
    for name in ("a.wav", "b.wav", "c.wav"):
        make_audio(service.inbox / name, seconds=0.5)
    service.start(env=env)
    deadline = time.monotonic() + 90
    while not service.all_settled(4) and time.monotonic() < deadline:
        restarted_like_systemd(service, env)
        time.sleep(0.05)
    assert service.states() == {"poison.wav": "failed", "a.wav": "done", "b.wav": "done",
                                "c.wav": "done"}  # fmt: skip
    poison = service.history("poison.wav")[-1]
    assert poison.crashes == 2
    assert "the service stopped while transcribing this file 2 times" in poison.last_error
    error = service.error_text("poison.wav")
    assert "stopped while transcribing this file 2 times" in error
    assert service.stop() == 0


def test_a_file_longer_than_max_duration_fails_clearly(service: Service):
    service.write_config(jobs={"max_duration": 1.0})
    make_audio(service.inbox / "long.wav", seconds=2.0)
    service.start()
    wait_for(lambda: service.states().get("long.wav") == "failed")
    error = service.history("long.wav")[0].last_error
    assert "0 min 02 s of audio is longer than jobs.max_duration (0 min 01 s)" in error
    service.error_text("long.wav")
    assert service.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_outbox_pauses_the_queue_and_fails_nothing(service: Service):
    service.outbox.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs",
                       str(service.outbox)]).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a tmpfs here")
    try:
        filler = service.outbox / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill it to the last block
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        for name in ("a.wav", "b.wav", "c.wav"):
            make_audio(service.inbox / name, seconds=0.4)
        service.start()
        wait_for(lambda: service.status()["service_status"].get("paused"), timeout=30)
        paused = service.status()["service_status"]["paused"][0]
        assert "disk full" in paused["reason"]
        assert "PAUSED:" in service.cli("status").stdout
        assert "failed" not in service.states().values()  # no file is blamed
        wait_for(lambda: any("PAUSED" in m for m in service.drain()))  # STATUS= says it too
        filler.unlink()  # space again: the queue resumes by itself
        wait_for(lambda: service.all_settled(3), timeout=120)
        assert set(service.states().values()) == {"done"}
        assert [j.attempts for j in service.jobs()] == [0, 0, 0]
        assert service.stop() == 0
    finally:
        service.close()
        subprocess.run(["umount", "-l", str(service.outbox)])


def test_the_worker_survives_an_error_at_the_job_boundary(service: Service):
    make_audio(service.inbox / "a.wav", seconds=0.4)
    service.outbox.mkdir()
    (service.outbox / "a.error.txt").mkdir()  # cannot be unlinked after success
    make_audio(service.inbox / "b.wav", seconds=0.4)
    service.start()
    wait_for(lambda: service.all_settled(2))
    assert service.states() == {"a.wav": "done", "b.wav": "done"}
    wait_for(lambda: service.events("error_file_not_removed"))  # logged after "done"
    assert service.proc.poll() is None
    assert service.stop() == 0


def test_sigterm_requeues_a_job_stuck_in_a_step_that_cannot_be_cancelled(service: Service):
    service.write_config(jobs={"stop_timeout": 1})
    make_audio(service.inbox / "a.wav", seconds=0.4)
    service.start(env={"WHISPERD_FAKE_STUCK": "120"})
    wait_for(lambda: service.states().get("a.wav") == "running")
    started = time.monotonic()
    assert service.stop(timeout=40) == 0
    assert time.monotonic() - started < 1 + 10 + 8  # stop_timeout + STOP_GRACE + slack
    job = service.jobs()[0]
    assert (job.state, job.attempts) == ("queued", 0)  # no attempt counted
    service.start()
    wait_for(lambda: service.states() == {"a.wav": "done"})
    assert service.stop() == 0


def test_a_folder_whose_rules_clash_gets_a_visible_failure(service: Service):
    # Each rule is valid, and no folder of the file shows the clash: only "ab" has both.
    service.write_config("folders:\n  'a*': {model: tiny.en}\n  '*b': {language: es}\n",
                         defaults={"model": "tiny"})  # fmt: skip
    (service.inbox / "ab").mkdir()
    make_audio(service.inbox / "ab" / "x.wav", seconds=0.4)
    service.start()
    wait_for(lambda: service.states().get("ab/x.wav") == "failed")
    error = service.error_text("ab/x.wav")
    assert "no valid settings for its folder" in error
    assert "cannot transcribe language 'es'" in error
    assert service.stop() == 0


def test_a_queued_file_moved_out_and_back_is_taken_again(service: Service, tmp_path: Path):
    make_audio(service.inbox / "busy.wav", seconds=0.4)
    make_audio(service.inbox / "later.wav", seconds=0.4)
    service.start(env={"WHISPERD_FAKE_DELAY": "60"})
    wait_for(lambda: sorted(service.states().values()) == ["queued", "running"])
    service.kill()  # the waiting file is in the next start's set of known versions
    service.start(env={"WHISPERD_FAKE_DELAY": "60"})
    wait_for(lambda: sorted(service.states().values()) == ["queued", "running"])
    waiting = next(p for p, s in service.states().items() if s == "queued")
    os.rename(service.inbox / waiting, tmp_path / waiting)
    wait_for(lambda: service.states().get(waiting) == "gone")  # the next full scan sees it
    os.rename(tmp_path / waiting, service.inbox / waiting)  # same size, mtime and inode
    wait_for(lambda: service.states().get(waiting) == "queued")  # revived, no restart
    assert len(service.history(waiting)) == 1  # the same version's row, revived
    service.kill()


def test_a_failed_file_deleted_while_the_service_was_down_loses_its_error_file(
    service: Service,
):
    (service.inbox / "bad.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00not audio" * 50)
    service.start()
    wait_for(lambda: service.states().get("bad.mp3") == "failed", timeout=60)
    assert service.stop() == 0
    (service.inbox / "bad.mp3").unlink()
    service.start()
    wait_for(lambda: service.states().get("bad.mp3") == "gone")
    wait_for(lambda: not (service.outbox / "bad.error.txt").exists())
    assert service.stop() == 0


def test_status_json_survives_a_name_that_is_not_utf8(service: Service):
    name = os.fsdecode(b"caf\xe9.wav")
    make_audio(service.inbox / name, seconds=0.4)
    service.start()
    wait_for(lambda: service.all_settled(1))
    env = {"PYTHONIOENCODING": "utf-8"}  # strict: a lone surrogate cannot be written
    result = subprocess.run(
        [*service.cli_command("status", "--json")], capture_output=True, env={**os.environ,
                                                                              **env})  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.decode("utf-8"))
    assert [f["path"] for f in report["files"]] == ["caf\\xe9.wav"]
    plain = subprocess.run([*service.cli_command("status")], capture_output=True,
                           env={**os.environ, **env})  # fmt: skip
    assert plain.returncode == 0 and b"Traceback" not in plain.stderr
    assert service.stop() == 0


def test_ctrl_c_exits_130_after_a_clean_stop(service: Service):
    service.start()
    service.signal(signal.SIGINT)
    assert service.proc.wait(timeout=30) == 130
    assert service.received("STOPPING=1")


def test_sighup_applies_the_new_log_level(service: Service):
    service.start()
    assert not [line for line in service.log().splitlines() if '"level": "debug"' in line]
    service.write_config("log: {level: debug}\n")
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.events("configuration reloaded"))
    make_audio(service.inbox / "a.wav", seconds=0.4)
    wait_for(lambda: service.all_settled(1))
    assert [line for line in service.log().splitlines() if '"level": "debug"' in line]
    assert service.stop() == 0


def test_status_lists_refused_entries(service: Service, tmp_path: Path):
    outside = make_audio(tmp_path / "secret.wav", seconds=0.4)
    (service.inbox / "escape.wav").symlink_to(outside)
    service.start()
    wait_for(lambda: service.status()["service_status"].get("refused"))
    assert service.status()["service_status"]["refused"] == [
        "escape.wav: a symlink that leads outside the inbox"
    ]
    assert "refused:   escape.wav: a symlink that leads outside the inbox" in (
        service.cli("status").stdout
    )
    assert service.stop() == 0
