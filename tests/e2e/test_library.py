"""A media library: ``whisperd run`` (a subprocess) over a tree of films and series with
``outputs_beside_source``, and a media server stub on 127.0.0.1 that records its calls.

What a person running Plex, Jellyfin or Emby checks: the subtitles land beside each video
with the players' naming (``Movie (2004).en.srt``), from the English track, on the video's
clock (a track starting 2 s after the video: cues start after 2 s, not 2 s early); videos
that already have subtitles (beside them, or inside) are skipped and listed in ``status``;
the media server gets one refresh per folder; nothing is written anywhere else. The fake
engine runs the service's side quickly; ``test_a_library_with_the_real_model`` does the
same with the real tiny.en.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import srt

from tests.e2e.service_harness import Service, wait_for
from tests.librarymedia import DELAY, LibraryMedia
from tests.librarymedia import srt as write_srt
from tests.mediaserver.httpserver import RecordingServer

UPDATED = ("POST", "/Library/Media/Updated")
SETTLED = ("done", "failed", "skipped")


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    stub = RecordingServer().start()
    yield stub
    stub.stop()


def library_config(server: RecordingServer, batch_seconds: float = 0.5) -> str:
    return (
        "outputs_beside_source: true\n"
        f"media_server: {{kind: jellyfin, url: '{server.url}', batch_seconds: {batch_seconds}, "
        "min_interval: 0}\n"
    )


def build_library(inbox: Path, media: LibraryMedia) -> dict[str, Path]:
    """A film with two audio tracks (jpn noise by default, eng speech 2 s late), a film with
    English subtitles beside it, one with an English subtitle stream inside, a series."""
    videos = {
        "movie": media.copy("two_audio_mkv", inbox / "Movies/Movie (2004)/Movie (2004).mkv"),
        "beside": media.copy("plain_mp4", inbox / "Movies/Heat (1995)/Heat (1995).mp4"),
        "inside": media.copy("subtitled_mkv", inbox / "Movies/Alien (1979)/Alien (1979).mkv"),
        "e01": media.copy("plain_mkv", inbox / "Show/Season 01/Show - S01E01.mkv"),
        "e02": media.copy("plain_mkv", inbox / "Show/Season 01/Show - S01E02.mkv"),
    }
    write_srt(inbox / "Movies/Heat (1995)/Heat (1995).en.srt", "A person's subtitle.")
    return videos


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def settled(service: Service, count: int) -> bool:
    states = service.states()
    return len(states) >= count and all(s in SETTLED for s in states.values())


def refreshed_paths(server: RecordingServer) -> list[str]:
    return [u["Path"] for c in server.calls_to(*UPDATED) for u in c.json()["Updates"]]


def test_a_library_gets_subtitles_beside_its_videos(
    tmp_path: Path, library_media: LibraryMedia, server: RecordingServer
) -> None:
    service = Service(tmp_path, env={"WHISPERD_MEDIA_TOKEN": "s3cret"})
    try:
        defaults = {"audio_language": ["en"], "formats": ["srt", "json"]}
        service.write_config(library_config(server), defaults=defaults)
        inbox = service.inbox
        videos = build_library(inbox, library_media)
        before = tree(inbox)
        service.start()
        wait_for(lambda: settled(service, 5), timeout=60)
        wait_for(lambda: len(set(refreshed_paths(server))) == 3)
        states = service.states()
        assert {p: s for p, s in states.items()} == {
            "Movies/Movie (2004)/Movie (2004).mkv": "done",
            "Movies/Heat (1995)/Heat (1995).mp4": "skipped",
            "Movies/Alien (1979)/Alien (1979).mkv": "skipped",
            "Show/Season 01/Show - S01E01.mkv": "done",
            "Show/Season 01/Show - S01E02.mkv": "done",
        }
        # Beside each video, named as players look for it; nothing anywhere else.
        written = tree(inbox) - before
        assert written == {
            "Movies/Movie (2004)/Movie (2004).en.srt", "Movies/Movie (2004)/Movie (2004).en.json",
            "Show/Season 01/Show - S01E01.en.srt", "Show/Season 01/Show - S01E01.en.json",
            "Show/Season 01/Show - S01E02.en.srt", "Show/Season 01/Show - S01E02.en.json",
        }  # fmt: skip
        assert not service.outbox.exists()
        # The English track (stream 2), and its cues on the video's clock.
        doc = json.loads(videos["movie"].with_name("Movie (2004).en.json").read_text())
        assert doc["audio_stream"] == {"index": 2, "language": "eng", "title": None,
                                       "chosen_by": "language 'en' (preference 1)"}  # fmt: skip
        assert doc["playback_offset"] == pytest.approx(DELAY, abs=0.06)
        cues = list(srt.parse(videos["movie"].with_name("Movie (2004).en.srt").read_text()))
        assert cues[0].start.total_seconds() == pytest.approx(DELAY, abs=0.06)
        # Skipped files are listed with the reason, not failed.
        report = service.status()
        assert {(f["path"], f["error"]) for f in report["skipped"]} == {
            ("Movies/Heat (1995)/Heat (1995).mp4",
             "already has subtitles in English: Heat (1995).en.srt"),
            ("Movies/Alien (1979)/Alien (1979).mkv",
             "already has an embedded subtitle stream in English (stream 2, srt)"),
        }  # fmt: skip
        assert report["counts"]["skipped"] == 2 and report["counts"]["failed"] == 0
        plain = service.cli("status").stdout
        assert "skipped (have subtitles already" in plain and "Heat (1995).en.srt" in plain
        # One refresh per folder written, each with its videos, with the token.
        paths = refreshed_paths(server)
        assert sorted(paths) == sorted(str(videos[k]) for k in ("movie", "e01", "e02"))
        folders = [
            folder
            for c in server.calls_to(*UPDATED)
            for folder in {os.path.dirname(u["Path"]) for u in c.json()["Updates"]}
        ]
        assert sorted(folders) == sorted({str(videos[k].parent) for k in ("movie", "e01")})
        assert all(c.headers["authorization"] == 'MediaBrowser Token="s3cret"'
                   for c in server.calls)  # fmt: skip
        wait_for(lambda: (service.status()["service_status"].get("media_server") or {})
                 .get("refreshed") == 2)  # fmt: skip
        assert service.stop() == 0
    finally:
        service.close()


def test_collisions_failures_and_new_subtitles_in_a_library(
    tmp_path: Path, library_media: LibraryMedia, server: RecordingServer
) -> None:
    """Movie.mkv beside Movie.mp4 write apart; a broken video gets its .error.txt beside it;
    a subtitle that arrives while a video waits makes the worker skip it."""
    service = Service(tmp_path, env={"WHISPERD_MEDIA_TOKEN": "s3cret"})
    try:
        service.write_config(library_config(server), defaults={"language": "en"},
                             jobs={"max_attempts": 1})  # fmt: skip
        inbox = service.inbox
        library_media.copy("plain_mkv", inbox / "Twins/Twins.mkv")
        library_media.copy("plain_mp4", inbox / "Twins/Twins.mp4")
        (inbox / "Broken").mkdir()
        (inbox / "Broken/Broken.mkv").write_bytes(b"not a video at all\n" * 500)
        service.start()
        wait_for(lambda: settled(service, 3), timeout=60)
        assert (inbox / "Twins/Twins.mkv.en.srt").is_file()
        assert (inbox / "Twins/Twins.mp4.en.srt").is_file()  # neither overwrote the other
        # the failure is recorded first, then its .error.txt is written
        wait_for(lambda: (inbox / "Broken/Broken.error.txt").is_file())
        error = (inbox / "Broken/Broken.error.txt").read_text()
        assert "whisperd retry Broken/Broken.mkv" in error
        assert not service.outbox.exists()
        # A subtitle arrives while a video waits in the queue (a paused worker: a slow job).
        service.stop()
        service.write_config(library_config(server), defaults={"language": "en"},
                             jobs={"max_attempts": 1}, watch={"stable_seconds": 0.3})  # fmt: skip
        service.start(env={"WHISPERD_FAKE_DELAY": "3"})
        library_media.copy("plain_mkv", inbox / "Late/Late.mkv")
        library_media.copy("plain_mkv", inbox / "Late/Later.mkv")
        wait_for(lambda: "running" in service.states().values(), timeout=30)
        running = next(p for p, s in service.states().items() if s == "running")
        waiting = "Late/Later.mkv" if running == "Late/Late.mkv" else "Late/Late.mkv"
        write_srt(inbox / (waiting[: -len(".mkv")] + ".eng.srt"), "From Bazarr.")
        wait_for(lambda: settled(service, 5), timeout=60)
        assert service.states()[waiting] == "skipped"
        assert not (inbox / (waiting[: -len(".mkv")] + ".en.srt")).exists()
        assert service.stop() == 0
    finally:
        service.close()


def test_kills_mid_job_leave_the_library_whole(tmp_path: Path, library_media: LibraryMedia) -> None:
    """SIGKILL at different moments of jobs that write beside the videos: at the end every
    video has its subtitles, complete, once; no temp file, no .error.txt, nothing else."""
    service = Service(tmp_path, env={"WHISPERD_FAKE_DELAY": "0.6"})
    try:
        service.write_config("outputs_beside_source: true\n",
                             defaults={"language": "en", "formats": ["srt", "json"]},
                             jobs={"crash_limit": 10})  # fmt: skip
        videos = [library_media.copy("plain_mkv", service.inbox / f"Show/Season 01/E{i}.mkv")
                  for i in range(4)]  # fmt: skip
        videos += [library_media.copy("two_audio_mkv", service.inbox / f"Film {i}/Film {i}.mkv")
                   for i in range(2)]  # fmt: skip
        before = tree(service.inbox)
        service.start()
        for into in (0.05, 0.3, 0.55, 0.62):  # early, mid, late in a job, and around its end
            wait_for(lambda: "running" in service.states().values(), timeout=30)
            time.sleep(into)
            service.kill()
            service.start()
        wait_for(lambda: settled(service, len(videos)), timeout=120)
        assert set(service.states().values()) == {"done"}
        expected = {v.with_name(f"{v.stem}.en.{ext}") for v in videos for ext in ("srt", "json")}
        assert tree(service.inbox) - before == {
            p.relative_to(service.inbox).as_posix() for p in expected}  # fmt: skip
        for video in videos:
            doc = json.loads(video.with_name(f"{video.stem}.en.json").read_text())
            assert doc["source"] == video.relative_to(service.inbox).as_posix()
            assert doc["audio_duration"] == pytest.approx(5.03 if "Film" in video.name else 1.95,
                                                          abs=0.05)  # fmt: skip
        assert not service.outbox.exists()
        assert service.stop() == 0
    finally:
        service.close()


def test_a_folder_that_refuses_files_fails_only_its_video(
    tmp_path: Path, library_media: LibraryMedia
) -> None:
    """Permission denied in one video's folder is that video's failure (retried, then failed
    and listed); the worker does not pause and the rest of the library goes on."""
    service = Service(tmp_path)
    locked = service.inbox / "Locked"
    try:
        service.write_config("outputs_beside_source: true\n", defaults={"language": "en"},
                             jobs={"max_attempts": 1})  # fmt: skip
        library_media.copy("plain_mkv", locked / "Locked.mkv")
        library_media.copy("plain_mkv", service.inbox / "Open/Open.mkv")
        immutable = subprocess.run(["chattr", "+i", str(locked)], capture_output=True)
        if immutable.returncode:  # root writes anywhere but in an immutable folder
            pytest.skip(f"cannot make a folder immutable here: {immutable.stderr!r}")
        service.start()
        wait_for(lambda: settled(service, 2), timeout=90)
        assert service.states() == {"Locked/Locked.mkv": "failed", "Open/Open.mkv": "done"}
        (failure,) = service.status()["recent_failures"]
        assert "permission denied" in failure["error"]
        assert "this video's folder" in failure["error"]
        assert not service.events("worker_paused")
        assert (service.inbox / "Open/Open.en.srt").is_file()
        assert service.stop() == 0
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)
        service.close()


def test_error_files_can_be_turned_off(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        service.write_config("outputs_beside_source: true\n",
                             defaults={"error_files": False}, jobs={"max_attempts": 1})  # fmt: skip
        (service.inbox / "Broken").mkdir()
        (service.inbox / "Broken/Broken.mkv").write_bytes(b"not a video\n" * 500)
        service.start()
        wait_for(lambda: service.states().get("Broken/Broken.mkv") == "failed", timeout=30)
        assert tree(service.inbox) == {"Broken/Broken.mkv"}  # the failure is in status only
        assert [f["path"] for f in service.status()["recent_failures"]] == ["Broken/Broken.mkv"]
        assert service.stop() == 0
    finally:
        service.close()


def test_a_missing_token_stops_the_start_with_one_line(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        service.write_config("media_server: {kind: plex, url: 'http://127.0.0.1:9'}\n")
        service.start(wait_ready=False)
        assert service.proc is not None and service.proc.wait(timeout=60) == 3
        assert ("media_server: no token (set media_server.token, media_server.token_file or "
                "$WHISPERD_MEDIA_TOKEN)") in service.log()  # fmt: skip
        assert "Traceback" not in service.log()
    finally:
        service.close()


@pytest.mark.real_model
def test_a_library_with_the_real_model(
    tmp_path: Path, library_media: LibraryMedia, server: RecordingServer, model_dir: Path
) -> None:
    """The issue's library with the real tiny.en: English text from the English track, its
    first cue after the 2 s delay, the subtitled films skipped, one refresh per folder."""
    service = Service(tmp_path, fake=False, env={"WHISPERD_MEDIA_TOKEN": "s3cret"})
    try:
        # A batch window longer than the run: what is pending is sent when the service stops.
        service.write_config(
            library_config(server, batch_seconds=600),
            defaults={"audio_language": ["en"], "word_timestamps": True},
        )
        inbox = service.inbox
        videos = build_library(inbox, library_media)
        before = tree(inbox)
        service.start()
        wait_for(lambda: settled(service, 5), timeout=300)
        assert sorted(tree(inbox) - before) == [
            "Movies/Movie (2004)/Movie (2004).en.srt",
            "Show/Season 01/Show - S01E01.en.srt",
            "Show/Season 01/Show - S01E02.en.srt",
        ]
        assert not service.outbox.exists()
        cues = list(srt.parse(videos["movie"].with_name("Movie (2004).en.srt").read_text()))
        text = " ".join(c.content for c in cues).lower()
        assert "comparatively modern" in text  # the English speech, not the Japanese noise
        assert cues[0].start.total_seconds() > DELAY - 0.3  # not 2 s early
        assert cues[0].start.total_seconds() < DELAY + 0.6
        episode = list(srt.parse(videos["e01"].with_name("Show - S01E01.en.srt").read_text()))
        assert episode[0].start.total_seconds() < 0.6  # no delay there: nothing shifted
        skipped = {f["path"] for f in service.status()["skipped"]}
        assert skipped == {"Movies/Heat (1995)/Heat (1995).mp4",
                           "Movies/Alien (1979)/Alien (1979).mkv"}  # fmt: skip
        assert service.stop() == 0
        assert sorted(refreshed_paths(server)) == sorted(
            str(videos[k]) for k in ("movie", "e01", "e02"))  # fmt: skip
        folders = [
            folder
            for c in server.calls_to(*UPDATED)
            for folder in {os.path.dirname(u["Path"]) for u in c.json()["Updates"]}
        ]
        assert sorted(folders) == sorted({str(videos[k].parent) for k in ("movie", "e01")})
    finally:
        service.close()
