"""At intake, in a library folder: videos that already have subtitles are recorded skipped
with what was found (never queued), the others queued; the checks are spread over steps."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from daemon.config import Resolver, load_config
from daemon.intake import Candidate
from daemon.queue import Ledger
from daemon.service import bridge as bridge_mod
from daemon.service.bridge import IntakeBridge
from daemon.version import Fingerprint, VersionPolicy
from tests.librarymedia import LibraryMedia, srt


@pytest.fixture
def library(tmp_path: Path, library_media: LibraryMedia):
    inbox = tmp_path / "in"
    cfg_path = tmp_path / "whisperd.yaml"
    cfg_path.write_text(
        f"inbox: {inbox}\noutbox: {tmp_path / 'out'}\nstate_dir: {tmp_path / 'var'}\n"
        "defaults: {model: tiny.en}\n"
        "folders: {Movies: {outputs_beside_source: true}}\n"
    )
    rules = Resolver(load_config(cfg_path))
    ledger = Ledger(tmp_path / "var" / "ledger.sqlite3")
    bridge = IntakeBridge(ledger, lambda: rules, VersionPolicy())
    yield inbox, bridge, ledger
    ledger.close()


def candidate(inbox: Path, rel: str) -> Candidate:
    return Candidate(rel, inbox / rel, Fingerprint.of(os.stat(inbox / rel)))


def test_subtitled_videos_are_skipped_with_the_reason(library, library_media) -> None:
    inbox, bridge, ledger = library
    movies = inbox / "Movies"
    library_media.copy("plain_mp4", movies / "Movie (2004).mp4")
    srt(movies / "Movie (2004).en.srt", "Hello.")
    library_media.copy("subtitled_mkv", movies / "Subbed.mkv")
    library_media.copy("two_audio_mkv", movies / "New.mkv")
    library_media.copy("subtitled_mkv", inbox / "Other" / "Subbed.mkv")  # a mirrored folder
    for rel in ("Movies/Movie (2004).mp4", "Movies/Subbed.mkv", "Movies/New.mkv",
                "Other/Subbed.mkv"):  # fmt: skip
        bridge.on_ready(candidate(inbox, rel))
    bridge.flush()
    jobs = {j.path: (j.state, j.last_error) for j in ledger.latest_per_path()}
    assert jobs == {
        "Movies/Movie (2004).mp4": ("skipped", "already has subtitles in English: "
                                               "Movie (2004).en.srt"),
        "Movies/Subbed.mkv": ("skipped", "already has an embedded subtitle stream in English "
                                         "(stream 2, srt)"),
        "Movies/New.mkv": ("queued", None),
        "Other/Subbed.mkv": ("queued", None),  # skip_if_subtitles is off outside the library
    }  # fmt: skip
    assert ledger.queue_depth() == 2


def test_whisperds_own_subtitles_do_not_skip_a_new_version(library, library_media) -> None:
    inbox, bridge, ledger = library
    video = library_media.copy("plain_mkv", inbox / "Movies" / "Film.mkv")
    bridge.on_ready(candidate(inbox, "Movies/Film.mkv"))
    (job,) = bridge.flush()
    assert ledger.claim("w", now=time.time() + 1).id == job.id
    ours = srt(video.with_name("Film.en.srt"), "in being comparatively modern")
    ledger.complete(job.id, outputs=[str(ours)], audio_seconds=2, processing_seconds=1,
                    language="en")  # fmt: skip
    with open(video, "ab") as fh:  # the video is replaced by a new version
        fh.write(b"\0" * 16)
    bridge.on_ready(candidate(inbox, "Movies/Film.mkv"))
    (again,) = bridge.flush()
    assert again.state == "queued"


def test_the_checks_are_spread_over_steps(library, library_media, monkeypatch) -> None:
    inbox, bridge, ledger = library
    for i in range(6):
        library_media.copy("plain_mkv", inbox / "Movies" / f"E{i}.mkv")
        bridge.on_ready(candidate(inbox, f"Movies/E{i}.mkv"))
    monkeypatch.setattr(bridge_mod, "JUDGE_BUDGET", 0.0)  # no time at all: one per step
    assert bridge.checking == 6
    bridge.flush()
    assert bridge.checking == 5 and ledger.queue_depth() == 1
    bridge.on_gone("Movies/E5.mkv")  # gone while waiting: never queued
    while bridge.checking:
        bridge.flush()
    assert ledger.queue_depth() == 5
