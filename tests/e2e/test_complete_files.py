"""Issue: a file is transcribed only when it is complete (``whisperd run`` in a subprocess).

Real writers in other processes, real containers cut short, real ready markers; the fake
engine stands in for recognition only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.service_harness import Service, stays_false, wait_for
from tests.synth import make_audio, make_video

WRITER = """
import sys
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as out:
    out.write(data[: len(data) // 2])
    out.flush()
    print("half", flush=True)
    sys.stdin.readline()          # the test says when the rest comes: a paused upload
    out.write(data[len(data) // 2 :])
"""


@pytest.fixture
def service(tmp_path: Path):
    svc = Service(tmp_path)
    yield svc
    svc.close()


def test_a_writer_pausing_longer_than_the_window_is_waited_for(service: Service, tmp_path: Path):
    source = make_audio(tmp_path / "whole.wav", seconds=2.0)
    service.start()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source),
                               str(service.inbox / "upload.wav")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "half"
        # Half the file, unchanged for many stability windows (0.3 s), but still open.
        stays_false(lambda: service.states(), seconds=2.0)
        wait_for(lambda: service.status()["service_status"].get("waiting"))
        assert service.status()["service_status"]["waiting"] == {"open for writing": 1}
        writer.communicate("go\n", timeout=10)
    finally:
        writer.kill()
    wait_for(lambda: service.all_settled(1))
    history = service.history("upload.wav")
    assert [j.state for j in history] == ["done"]
    assert history[0].fingerprint.size == source.stat().st_size
    data = json.loads((service.outbox / "upload.json").read_text())
    assert data["audio_duration"] == pytest.approx(2.0, abs=0.05)
    assert service.stop() == 0


def test_a_cut_mp4_is_incomplete_then_fails_after_the_timeout(service: Service, tmp_path: Path):
    service.write_config(watch={"incomplete_timeout": 3})
    whole = make_video(tmp_path / "whole.mp4", seconds=2.0)  # moov at the end
    data = whole.read_bytes()
    (service.inbox / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # no moov yet
    service.start()
    wait_for(lambda: service.states().get("cut.mp4") == "incomplete")
    report = service.status()
    assert [f["path"] for f in report["incomplete"]] == ["cut.mp4"]
    assert "MP4" in report["incomplete"][0]["error"]
    assert not (service.outbox / "cut.error.txt").exists()  # not a failure (yet)
    plain = service.cli("status").stdout
    assert "incomplete (waiting for the rest of the file" in plain and "cut.mp4: MP4" in plain
    # Unchanged past incomplete_timeout: a clear failure, with an .error.txt.
    wait_for(lambda: service.states().get("cut.mp4") == "failed", timeout=90)
    error = service.error_text("cut.mp4")
    assert "still incomplete after waiting" in error and "whisperd retry cut.mp4" in error
    assert service.stop() == 0


def test_an_incomplete_file_is_taken_when_the_rest_arrives(service: Service, tmp_path: Path):
    whole = make_audio(tmp_path / "whole.wav", seconds=3.0)
    data = whole.read_bytes()
    target = service.inbox / "slow.wav"
    target.write_bytes(data[: len(data) // 2])  # a WAV shorter than its header says
    service.start()
    wait_for(lambda: service.states().get("slow.wav") == "incomplete")
    with open(target, "ab") as fh:
        fh.write(data[len(data) // 2 :])
    wait_for(lambda: service.states().get("slow.wav") == "done")
    assert [j.state for j in service.history("slow.wav")] == ["superseded", "done"]
    assert json.loads((service.outbox / "slow.json").read_text())["audio_duration"] == (
        pytest.approx(3.0, abs=0.05)
    )
    assert service.stop() == 0


def test_a_preallocated_copy_with_a_zero_tail_waits(service: Service, tmp_path: Path):
    """Windows Explorer over SMB: the final size first, zeros, then the data; mtime last."""
    whole = make_audio(tmp_path / "whole.mp3", seconds=3.0)
    data = whole.read_bytes()
    target = service.inbox / "explorer.mp3"
    with open(target, "wb") as fh:
        fh.truncate(len(data) + 70_000)  # the size up front, as Explorer sets it
        fh.write(data[:1000])
    service.start()
    wait_for(lambda: service.states().get("explorer.mp3") == "incomplete")
    with open(target, "r+b") as fh:  # the copy goes on, then the size is set right
        fh.write(data)
        fh.truncate(len(data))
    wait_for(lambda: service.states().get("explorer.mp3") == "done")
    assert json.loads((service.outbox / "explorer.json").read_text())["audio_duration"] == (
        pytest.approx(3.0, abs=0.1)
    )
    assert service.stop() == 0


def test_ready_marker_per_file_waits_and_is_removed(service: Service, tmp_path: Path):
    service.write_config("folders:\n  marked: {ready_marker: '{name}.ready'}\n")
    (service.inbox / "marked").mkdir()
    make_audio(service.inbox / "marked" / "a.wav", seconds=0.5)
    make_audio(service.inbox / "free.wav", seconds=0.5)
    service.start()
    wait_for(lambda: service.states().get("free.wav") == "done")
    assert "marked/a.wav" not in service.states()
    wait_for(lambda: service.status()["service_status"].get("waiting"))
    assert service.status()["service_status"]["waiting"] == {
        "waiting for its ready marker '{name}.ready'": 1
    }
    (service.inbox / "marked" / "a.wav.ready").write_text("")
    wait_for(lambda: service.states().get("marked/a.wav") == "done")
    wait_for(lambda: not (service.inbox / "marked" / "a.wav.ready").exists())
    assert (service.outbox / "marked" / "a.srt").is_file()
    assert service.stop() == 0


def test_folder_marker_lets_the_whole_folder_in_and_goes_when_it_is_done(
    service: Service, tmp_path: Path
):
    service.write_config("folders:\n  batch: {ready_marker: '*.done'}\n")
    (service.inbox / "batch").mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        make_audio(service.inbox / "batch" / name, seconds=0.4)
    service.start()
    stays_false(lambda: service.states(), seconds=1.0)
    (service.inbox / "batch" / "upload.done").write_text("")
    wait_for(lambda: service.all_settled(3))
    assert set(service.states().values()) == {"done"}
    wait_for(lambda: not (service.inbox / "batch" / "upload.done").exists())
    assert service.stop() == 0


def test_an_unreadable_marker_setting_is_a_config_error(service: Service):
    service.write_config(defaults={"ready_marker": "{name}"})
    result = service.cli("check-config")
    assert result.returncode == 3
    assert "defaults.ready_marker: '{name}' names the file itself" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to see every process's descriptors")
def test_status_says_who_holds_a_file_open(service: Service):
    service.start()
    with open(service.inbox / "open.wav", "wb") as fh:
        fh.write(b"RIFF")
        fh.flush()
        wait_for(lambda: service.status()["service_status"].get("waiting"))
        assert service.status()["service_status"]["waiting"] == {"open for writing": 1}
        assert "waiting:   1 open for writing" in service.cli("status").stdout
    assert service.stop() == 0
