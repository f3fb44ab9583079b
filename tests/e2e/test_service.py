"""`whisperd run` as a subprocess: real watchdog, real SQLite, real signals, sd_notify.

Most tests use the fake engine (tests/fake_engine.py) behind the real interface: decoding,
naming, writing and the ledger stay real. test_real_model_end_to_end runs the real tiny.en.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import unicodedata
from pathlib import Path

import pytest

from tests.e2e.service_harness import Service, stays_false, wait_for
from tests.speech import clips
from tests.synth import make_audio, make_video

FORMATS = ("txt", "srt", "vtt", "tsv", "json")


@pytest.fixture
def service(tmp_path: Path):
    svc = Service(tmp_path)
    yield svc
    svc.close()


def audio(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_audio(path, seconds=seconds)


def video(path: Path, seconds: float, with_audio: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_video(path, seconds=seconds, with_audio=with_audio)


def outputs_of(outbox: Path, rel_stem: str) -> list[Path]:
    return [outbox / f"{rel_stem}.{fmt}" for fmt in FORMATS]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith(".whisperd-tmp")]


def test_tree_with_per_folder_settings_and_video(service: Service):
    # The fake engine answers with the configured language (it cannot detect one), so every
    # file here gets its language from the rules: defaults fr, es and a/b by folder rules.
    service.write_config(
        "folders:\n  es: {model: base, language: es}\n  a/b: {language: de, formats: [srt]}\n",
        defaults={"model": "tiny", "language": "fr"},
    )
    audio(service.inbox / "top.wav", seconds=1.0)
    audio(service.inbox / "es" / "charla.mp3", seconds=1.5)
    audio(service.inbox / "a" / "b" / "c" / "deep.flac", seconds=1.2)
    video(service.inbox / "a" / "movie.mp4", seconds=1.0)
    service.start()
    wait_for(lambda: service.all_settled(4))
    assert set(service.states().values()) == {"done"}
    for rel in ("top", "es/charla", "a/movie"):
        for path in outputs_of(service.outbox, rel):
            assert path.is_file(), path
    assert sorted(p.name for p in (service.outbox / "a/b/c").iterdir()) == ["deep.srt"]
    top, es = read_json(service.outbox / "top.json"), read_json(service.outbox / "es/charla.json")
    assert (top["language"], top["model"]) == ("fr", "tiny")
    assert (es["language"], es["model"]) == ("es", "base")
    assert read_json(service.outbox / "a/movie.json")["language"] == "fr"
    assert "fake de transcript" in (service.outbox / "a/b/c/deep.srt").read_text()
    assert es["source"] == "es/charla.mp3"
    assert es["audio_duration"] == pytest.approx(1.5, abs=0.05)
    report = service.status()
    assert report["service"]["running"] is True
    assert {f["path"]: f["state"] for f in report["files"]} == {
        "top.wav": "done", "es/charla.mp3": "done", "a/b/c/deep.flac": "done",
        "a/movie.mp4": "done",
    }  # fmt: skip
    assert service.stop() == 0


def test_slow_copy_is_transcribed_once_after_it_completes(service: Service, tmp_path: Path):
    source = audio(tmp_path / "long.wav", seconds=8.0)
    data = source.read_bytes()
    service.start()
    target = service.inbox / "copy.wav"
    with open(target, "wb") as fh:  # a slow copy: 1.5 s of chunks every 0.1 s
        for i in range(15):
            fh.write(data[i * len(data) // 15 : (i + 1) * len(data) // 15])
            fh.flush()
            time.sleep(0.1)
    wait_for(lambda: service.all_settled(1))
    history = service.history("copy.wav")
    assert [j.state for j in history] == ["done"]
    assert history[0].fingerprint.size == len(data)
    assert read_json(service.outbox / "copy.json")["audio_duration"] == pytest.approx(8.0, abs=0.05)
    assert service.stop() == 0


def test_part_file_renamed_into_place(service: Service, tmp_path: Path):
    service.start()
    part = service.inbox / "talk.mp3.part"
    audio(tmp_path / "talk.mp3", seconds=1.0)
    shutil.copy(tmp_path / "talk.mp3", part)
    # A file dropped after the .part is transcribed; the .part, stable as long, is not.
    shutil.copy(tmp_path / "talk.mp3", service.inbox / "sentinel.mp3")
    wait_for(lambda: service.states().get("sentinel.mp3") == "done")
    assert service.states() == {"sentinel.mp3": "done"}
    part.rename(service.inbox / "talk.mp3")
    wait_for(lambda: service.all_settled(2))
    assert service.states() == {"sentinel.mp3": "done", "talk.mp3": "done"}
    talk = sorted(p.name for p in service.outbox.iterdir() if p.stem == "talk")
    assert talk == sorted(f"talk.{f}" for f in FORMATS)


def test_burst_of_files_each_once(service: Service, tmp_path: Path):
    audio(tmp_path / "one.wav", seconds=0.3)
    service.start()
    for i in range(60):
        shutil.copy(tmp_path / "one.wav", service.inbox / f"burst-{i:02}.wav")
    wait_for(lambda: service.all_settled(60), timeout=120)
    history = service.history()
    assert len(history) == 60 and {j.state for j in history} == {"done"}
    assert len(list(service.outbox.glob("*.srt"))) == 60


def test_changed_file_again_unchanged_never_across_restarts(service: Service, tmp_path: Path):
    audio(service.inbox / "a.wav", seconds=1.0)
    service.start()
    wait_for(lambda: service.all_settled(1))
    first = read_json(service.outbox / "a.json")["created_at"]
    assert service.stop() == 0

    service.start()  # restart: the unchanged file is known, nothing is transcribed again
    audio(service.inbox / "later.wav", seconds=0.3)  # handled after the start-up scan
    wait_for(lambda: service.states().get("later.wav") == "done")
    assert len(service.history("a.wav")) == 1
    assert read_json(service.outbox / "a.json")["created_at"] == first

    audio(service.inbox / "a.wav", seconds=2.0)  # a new version
    wait_for(lambda: len(service.history("a.wav")) == 2 and service.all_settled(1))
    assert [j.state for j in service.history("a.wav")] == ["done", "done"]
    assert read_json(service.outbox / "a.json")["audio_duration"] == pytest.approx(2.0, abs=0.05)
    assert service.stop() == 0


def test_kill_9_mid_job_then_restart_gives_one_set_of_outputs(service: Service):
    audio(service.inbox / "slow.wav", seconds=1.0)
    service.start(env={"WHISPERD_FAKE_DELAY": "30"})
    wait_for(lambda: service.states().get("slow.wav") == "running")
    service.kill()
    assert service.states() == {"slow.wav": "running"}  # left over from the crash
    (service.outbox / ".left.json.12345678.whisperd-tmp").write_text("half")  # a crash leftover
    service.start(env={"WHISPERD_FAKE_DELAY": "0"})
    wait_for(lambda: service.all_settled(1))
    history = service.history("slow.wav")
    assert [(j.state, j.attempts) for j in history] == [("done", 1)]  # the crash counted once
    assert sorted(p.name for p in service.outbox.iterdir()) == sorted(f"slow.{f}" for f in FORMATS)
    assert no_temp_files(service.outbox)


def test_sigterm_finishes_the_running_job_within_stop_timeout(service: Service):
    audio(service.inbox / "job.wav", seconds=1.0)
    service.start(env={"WHISPERD_FAKE_DELAY": "2"})
    wait_for(lambda: service.states().get("job.wav") == "running")
    started = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    assert service.states() == {"job.wav": "done"}
    assert service.received("STOPPING=1")


def test_sigterm_aborts_a_long_job_and_requeues_it(service: Service):
    service.write_config(jobs={"stop_timeout": 1})
    audio(service.inbox / "long.wav", seconds=1.0)
    service.start(env={"WHISPERD_FAKE_DELAY": "60"})
    wait_for(lambda: service.states().get("long.wav") == "running")
    started = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 6
    [job] = service.history("long.wav")
    assert (job.state, job.attempts) == ("queued", 0)  # back in the queue, no attempt counted
    assert no_temp_files(service.outbox)
    service.start(env={"WHISPERD_FAKE_DELAY": "0"})
    wait_for(lambda: service.all_settled(1))
    assert service.states() == {"long.wav": "done"}


def test_second_sigterm_exits_at_once(service: Service):
    audio(service.inbox / "long.wav", seconds=1.0)
    service.start(env={"WHISPERD_FAKE_DELAY": "60"})
    wait_for(lambda: service.states().get("long.wav") == "running")
    service.signal(signal.SIGTERM)
    wait_for(lambda: service.received("STOPPING=1"))  # the first one is being acted on
    started = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 3
    # The ledger is consistent: the cut-short job is recovered and finished on the next start.
    service.start(env={"WHISPERD_FAKE_DELAY": "0"})
    wait_for(lambda: service.all_settled(1))
    assert [(j.state, j.attempts) for j in service.history("long.wav")] == [("done", 1)]


def test_sd_notify_ready_status_watchdog_stopping(service: Service):
    audio(service.inbox / "a.wav", seconds=0.5)
    service.start(env={"WATCHDOG_USEC": "2000000"})  # ping every second
    wait_for(lambda: service.all_settled(1))
    wait_for(lambda: service.received("WATCHDOG=1"), timeout=10)
    ready = next(m for m in service.messages if "READY=1" in m.splitlines())
    assert f"MAINPID={service.proc.pid}" in ready
    wait_for(lambda: any(line.startswith("STATUS=queue ") for m in service.drain()
                         for line in m.splitlines()), timeout=10)  # fmt: skip
    assert service.stop() == 0
    assert service.received("STOPPING=1")


def test_no_watchdog_ping_while_the_inbox_is_gone(service: Service):
    service.start(env={"WATCHDOG_USEC": "1000000"})
    wait_for(lambda: service.received("WATCHDOG=1"), timeout=10)
    shutil.rmtree(service.inbox)
    wait_for(lambda: service.events("inbox missing; waiting for it to come back"))
    service.drain()
    service.messages.clear()
    stays_false(lambda: service.received("WATCHDOG=1"), seconds=1.5)  # pings every 0.5 s
    service.inbox.mkdir()
    wait_for(lambda: service.received("WATCHDOG=1"), timeout=10)


def test_polling_mode(service: Service):
    service.config.write_text(service.config.read_text().replace(
        "watch: {", "watch: {poll: always, "))  # fmt: skip
    service.start()
    assert service.events("service started")[0]["mode"] == "polling"
    audio(service.inbox / "new" / "polled.ogg", seconds=0.5)
    wait_for(lambda: service.all_settled(1))
    assert service.states() == {"new/polled.ogg": "done"}


def test_inbox_removed_and_recreated(service: Service):
    audio(service.inbox / "before.wav", seconds=0.5)
    service.start()
    wait_for(lambda: service.all_settled(1))
    shutil.rmtree(service.inbox)
    wait_for(lambda: service.events("inbox missing; waiting for it to come back"))
    service.inbox.mkdir()
    audio(service.inbox / "after.wav", seconds=0.5)
    wait_for(lambda: service.all_settled(2), timeout=30)
    assert service.states() == {"before.wav": "done", "after.wav": "done"}
    assert service.proc.poll() is None


def test_bad_files_get_error_txt_and_the_service_keeps_going(service: Service, tmp_path: Path):
    (service.inbox / "notes.mp3").write_text("this is not audio at all\n" * 50)
    (service.inbox / "empty.wav").write_bytes(b"")
    (service.inbox / "sub" / "dir").mkdir(parents=True)  # no output was ever written there
    (service.inbox / "sub" / "dir" / "zero.wav").write_bytes(b"")
    good = audio(tmp_path / "good.mp3", seconds=3.0)
    (service.inbox / "corrupt.mp3").write_bytes(good.read_bytes()[:64] + os.urandom(20000))
    video(service.inbox / "silent-movie.mp4", seconds=1.0, with_audio=False)
    service.start()
    wait_for(lambda: service.all_settled(5), timeout=60)
    audio(service.inbox / "after.wav", seconds=0.5)
    wait_for(lambda: service.states().get("after.wav") == "done")
    states = service.states()
    for name, words in {
        "notes.mp3": "not an audio or video file",
        "empty.wav": "empty",
        "corrupt.mp3": "",
        "silent-movie.mp4": "no audio stream",
        "sub/dir/zero.wav": "empty",
    }.items():
        assert states[name] == "failed", (name, states)
        stem = Path(name).with_suffix("").as_posix()
        error = service.error_text(name)
        assert error.startswith(f"whisperd could not transcribe: {name}\n")
        assert words in error
        assert f"whisperd retry {name}" in error
        assert not (service.outbox / f"{stem}.srt").exists()
    failures = service.status()["recent_failures"]
    assert {f["path"] for f in failures} == {"notes.mp3", "empty.wav", "corrupt.mp3",
                                             "silent-movie.mp4", "sub/dir/zero.wav"}  # fmt: skip
    assert all(f["attempts"] == 3 for f in failures)  # jobs.max_attempts
    # A failed version is not tried again by itself, but `retry` queues it again.
    assert service.cli("retry", "--failed").stdout.startswith("5 failed files queued again")
    wait_for(lambda: service.states()["empty.wav"] == "queued" or service.all_settled(6))
    wait_for(lambda: service.all_settled(6))
    [again] = service.history("empty.wav")
    assert (again.state, again.attempts) == ("failed", 3)  # three fresh attempts after retry


def test_replacing_a_failed_file_with_a_good_one_clears_the_error(service: Service):
    (service.inbox / "x.wav").write_bytes(b"")
    service.start()
    wait_for(lambda: service.states().get("x.wav") == "failed")
    service.error_text("x.wav")
    audio(service.inbox / "x.wav", seconds=0.5)
    wait_for(lambda: service.states().get("x.wav") == "done")
    assert not (service.outbox / "x.error.txt").exists()
    assert (service.outbox / "x.srt").is_file()


def test_symlink_outside_the_inbox_is_refused(service: Service, tmp_path: Path):
    outside = audio(tmp_path / "secret.wav", seconds=0.5)
    inside = audio(service.inbox / "real.wav", seconds=0.5)
    (service.inbox / "escape.wav").symlink_to(outside)
    (service.inbox / "alias.wav").symlink_to(inside)
    service.start()
    wait_for(lambda: service.all_settled(2))
    refused = wait_for(lambda: service.events("symlink points outside the inbox; refused"))
    assert refused[0]["rel"] == "escape.wav"
    assert service.states() == {"real.wav": "done", "alias.wav": "done"}


def test_odd_names(service: Service, tmp_path: Path):
    audio(tmp_path / "x.wav", seconds=0.3)
    names = [
        "with spaces in it.wav",
        unicodedata.normalize("NFD", "canción café.wav"),
        "-leading-dash.wav",
        os.fsdecode(b"latin1-caf\xe9.wav"),
        "l" * 200 + ".wav",
    ]
    for name in names:
        shutil.copy(tmp_path / "x.wav", service.inbox / name)
    service.start()
    wait_for(lambda: service.all_settled(len(names)))
    assert set(service.states()) == set(names)
    assert set(service.states().values()) == {"done"}
    on_disk = set(os.listdir(os.fsencode(service.outbox)))
    for name in names[:4]:
        stem = os.fsencode(name)[: -len(b".wav")]
        assert stem + b".srt" in on_disk, name
    assert any(n.startswith(b"lll") and n.endswith(b".srt") for n in on_disk)


def test_second_instance_refused(service: Service):
    service.start()
    second = service.cli("run")
    assert second.returncode == 4
    assert "already running" in second.stderr and "Traceback" not in second.stderr
    assert service.proc.poll() is None


def test_sighup_reloads_and_rejects_invalid_config(service: Service):
    service.start()
    service.write_config("folders:\n  fr: {model: base, language: fr}\n")
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.events("configuration reloaded"))
    audio(service.inbox / "fr" / "a.wav", seconds=0.5)
    wait_for(lambda: service.all_settled(1))
    assert read_json(service.outbox / "fr" / "a.json")["language"] == "fr"
    service.config.write_text("defaults: {language: xx}\n")
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.events("configuration reload rejected; keeping the running one"))
    audio(service.inbox / "fr" / "b.wav", seconds=0.5)
    wait_for(lambda: service.all_settled(2))
    assert read_json(service.outbox / "fr" / "b.json")["language"] == "fr"


@pytest.mark.parametrize("policy", ["move", "delete"])
def test_on_success_move_or_delete_after_outputs(service: Service, tmp_path: Path, policy: str):
    archive = tmp_path / "archive"
    service.write_config(jobs={"on_success": policy, "archive_dir": str(archive)})
    source = audio(service.inbox / "d" / "a.wav", seconds=0.5)
    outputs = outputs_of(service.outbox, "d/a")
    service.start(env={"WHISPERD_FAKE_DELAY": "1"})
    wait_for(lambda: service.states().get("d/a.wav") == "running")
    # Watch the source closely: the moment it leaves the inbox, every output must be there.
    present = wait_for(
        lambda: None if source.exists() else [p.name for p in outputs if p.is_file()],
        timeout=30, interval=0.001,
    )  # fmt: skip
    assert present == [p.name for p in outputs], "the source went before its outputs existed"
    assert read_json(service.outbox / "d" / "a.json")["source"] == "d/a.wav"
    assert (archive / "d" / "a.wav").is_file() == (policy == "move")
    if policy == "move":
        assert (archive / "d" / "a.wav").read_bytes()[:4] == b"RIFF"
    # The disappearance is not a new job: a later file is handled after it, and only it.
    audio(service.inbox / "d" / "b.wav", seconds=0.5)
    wait_for(lambda: service.states().get("d/b.wav") == "done")
    assert service.states() == {"d/a.wav": "done", "d/b.wav": "done"}
    assert service.stop() == 0


@pytest.mark.real_model
def test_real_model_end_to_end(tmp_path: Path, model_dir: Path):
    svc = Service(tmp_path, fake=False)
    try:
        english = clips("en")[0]
        (svc.inbox / "talks").mkdir()
        shutil.copy(english.path, svc.inbox / "talks" / english.path.name)
        svc.start()
        wait_for(lambda: svc.all_settled(1), timeout=300)
        data = read_json(svc.outbox / "talks" / f"{english.path.stem}.json")
        assert data["engine"] == "openai-whisper" and data["model"] == "tiny.en"
        assert "fellow Americans" in data["text"]
        for path in outputs_of(svc.outbox, f"talks/{english.path.stem}"):
            assert path.is_file()
        assert svc.stop() == 0
    finally:
        svc.close()


def test_status_readable_while_running(service: Service):
    audio(service.inbox / "busy.wav", seconds=1.0)
    # a job long enough to still run after two `status` processes started on a busy machine
    service.start(env={"WHISPERD_FAKE_DELAY": "60"})
    wait_for(lambda: service.states().get("busy.wav") == "running")
    result = service.cli("status")
    assert result.returncode == 0
    assert "service:   running" in result.stdout
    assert "running:   busy.wav" in result.stdout
    report = service.status()
    assert report["running"][0]["path"] == "busy.wav"
    assert report["counts"]["running"] == 1
