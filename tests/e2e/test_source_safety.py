"""Issue: the source is acted on only if it is the version that was transcribed; a stop at
any moment neither loses work nor runs the engine again (``whisperd run`` in a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from daemon.queue import open_ledger
from daemon.version import VersionPolicy
from tests.e2e.service_harness import Service, wait_for
from tests.synth import make_audio

FORMATS = ("txt", "srt", "vtt", "tsv", "json")


@pytest.fixture
def service(tmp_path: Path):
    svc = Service(tmp_path)
    yield svc
    svc.close()


def duration(path: Path) -> float:
    return json.loads(path.read_text(encoding="utf-8"))["audio_duration"]


def test_a_file_replaced_during_its_job_is_not_deleted(service: Service, tmp_path: Path):
    service.write_config(jobs={"on_success": "delete"})
    source = make_audio(service.inbox / "talk.wav", seconds=1.0)
    service.start(env={"WHISPERD_FAKE_DELAY": "2"})
    wait_for(lambda: service.states().get("talk.wav") == "running")
    replacement = make_audio(tmp_path / "v2.wav", seconds=1.5)  # a second upload, mid-job
    os.replace(replacement, source)
    # The first version's job ends; the file on disk is the second version: left alone.
    wait_for(lambda: any(j.state == "done" for j in service.history("talk.wav")))
    events = wait_for(lambda: service.events("source_left_alone"))
    assert events[0]["reason"] == "the file changed during its job"
    # Then the second version runs, and it is that one the policy deletes.
    wait_for(lambda: [j.state for j in service.history("talk.wav")] == ["done", "done"],
             timeout=60)  # fmt: skip
    wait_for(lambda: not source.exists())
    assert duration(service.outbox / "talk.json") == pytest.approx(1.5, abs=0.05)
    assert service.stop() == 0


def test_the_archive_never_overwrites(service: Service, tmp_path: Path):
    archive = tmp_path / "archive"
    (archive / "d").mkdir(parents=True)
    (archive / "d" / "a.wav").write_bytes(b"last week's original")
    service.write_config(jobs={"on_success": "move", "archive_dir": str(archive)})
    (service.inbox / "d").mkdir()
    make_audio(service.inbox / "d" / "a.wav", seconds=0.5)
    service.start()
    wait_for(lambda: (archive / "d" / "a (2).wav").is_file())
    assert (archive / "d" / "a.wav").read_bytes() == b"last week's original"
    assert not (service.inbox / "d" / "a.wav").exists()
    assert service.events("archived_under_another_name")
    assert service.stop() == 0


def _state_of_a_crash(service: Service, rel: str, *, staged: bool) -> int:
    """The ledger and outbox a kill leaves: a running job whose outputs were written to temp
    files and recorded (``staged``), or a done job whose on_success action did not happen."""
    source = service.inbox / rel
    st = source.stat()
    with open_ledger(service.state) as ledger:
        job = ledger.enqueue(rel, VersionPolicy().of(st), model="tiny.en", settings_json="{}")
        ledger.claim("w", now=None)
        if not staged:
            ledger.complete(job.id, outputs=[], audio_seconds=1, processing_seconds=1,
                            language="en", source_action="delete")  # fmt: skip
            return job.id
        files = []
        for fmt in FORMATS:
            final = service.outbox / f"{Path(rel).stem}.{fmt}"
            temp = final.with_name(f".{final.name}.abcd1234.whisperd-tmp")
            temp.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(f"{fmt} written before the kill")
            import hashlib

            digest = hashlib.sha256(temp.read_bytes()).hexdigest()
            files.append({"path": str(final), "temp": str(temp), "sha256": digest})
        ledger.stage(job.id, {"audio_seconds": 1.0, "processing_seconds": 0.5, "language": "en",
                              "files": files})  # fmt: skip
        return job.id


def test_a_kill_after_writing_the_outputs_finishes_the_commit_without_the_engine(
    service: Service,
):
    make_audio(service.inbox / "a.wav", seconds=1.0)
    service.start()  # creates the state_dir's ledger
    wait_for(lambda: service.all_settled(1))
    service.kill()
    for path in service.outbox.iterdir():
        path.unlink()
    shutil.rmtree(service.state)
    job_id = _state_of_a_crash(service, "a.wav", staged=True)
    service.log_path.unlink()
    service.start()
    wait_for(lambda: service.states().get("a.wav") == "done")
    wait_for(lambda: service.events("commit_finished"))  # logged after the ledger says done
    assert not service.events("transcribed")  # the engine did not run again
    assert (service.outbox / "a.srt").read_text() == "srt written before the kill"
    assert not [p for p in service.outbox.iterdir() if p.name.endswith(".whisperd-tmp")]
    assert [j.id for j in service.history("a.wav")] == [job_id]
    assert service.stop() == 0


def test_a_kill_between_done_and_the_source_action_is_finished_at_the_next_start(
    service: Service,
):
    service.write_config(jobs={"on_success": "delete"})
    make_audio(service.inbox / "a.wav", seconds=1.0)
    service.start()
    service.kill()  # before anything could be claimed? it may be done already: start over
    shutil.rmtree(service.state)
    shutil.rmtree(service.outbox)
    make_audio(service.inbox / "a.wav", seconds=1.0)
    _state_of_a_crash(service, "a.wav", staged=False)
    service.start()
    wait_for(lambda: not (service.inbox / "a.wav").exists())
    assert service.states() == {"a.wav": "done"}
    assert service.stop() == 0


def test_a_newer_version_that_fails_takes_the_old_transcripts_away(service: Service):
    make_audio(service.inbox / "talk.wav", seconds=1.0)
    service.start()
    wait_for(lambda: service.states().get("talk.wav") == "done")
    assert (service.outbox / "talk.srt").is_file()
    (service.inbox / "talk.wav").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00junk" * 50)
    wait_for(lambda: service.states().get("talk.wav") == "failed", timeout=60)
    wait_for(lambda: service.events("old_outputs_removed"))
    assert sorted(p.name for p in service.outbox.iterdir()) == ["talk.error.txt"]
    assert service.stop() == 0


def test_a_deleted_failed_source_takes_its_error_file_with_it(service: Service):
    (service.inbox / "bad.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00not audio" * 50)
    service.start()
    wait_for(lambda: service.states().get("bad.mp3") == "failed", timeout=60)
    service.error_text("bad.mp3")
    (service.inbox / "bad.mp3").unlink()
    wait_for(lambda: service.states().get("bad.mp3") == "gone")
    wait_for(lambda: not (service.outbox / "bad.error.txt").exists())
    assert service.stop() == 0
