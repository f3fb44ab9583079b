"""The judge of readiness, rule by rule, on real files with a real writer probe."""

from __future__ import annotations

from pathlib import Path

from daemon.config import WatchSettings
from daemon.intake.readiness import Judge, Settling, State
from daemon.intake.writers import WriterStatus
from daemon.version import Fingerprint
from tests.synth import make_audio, make_video

FP = Fingerprint(1, 1, 1)
OPTIONS = WatchSettings(stable_seconds=5, network_stable_seconds=30)


class Probe:
    def __init__(self, writing: bool | None) -> None:
        self.writing = writing

    def check(self, path: str) -> WriterStatus:
        return WriterStatus(self.writing, "test", "pid 42" if self.writing else "", ())


def judge(writing: bool | None, network: bool = False, marker: str | None = None) -> Judge:
    return Judge(OPTIONS, network=network, writers=Probe(writing),  # type: ignore[arg-type]
                 marker_for=lambda rel: marker)  # fmt: skip


def test_an_open_file_waits_however_long(tmp_path: Path) -> None:
    path = str(make_audio(tmp_path / "a.wav", seconds=0.5))
    decision = judge(True).decide("a.wav", path, Settling(FP, since=0), now=10_000)
    assert (decision.state, decision.reason) == (State.WAIT, "open for writing (pid 42)")


def test_a_whole_wav_nobody_writes_is_ready_at_once(tmp_path: Path) -> None:
    path = str(make_audio(tmp_path / "a.wav", seconds=0.5))
    assert judge(False).decide("a.wav", path, Settling(FP, since=0), now=0).state is State.READY


def test_an_unknown_format_waits_for_the_window_unless_its_writer_closed_it(tmp_path: Path):
    path = tmp_path / "a.raw"
    path.write_bytes(b"\1" * 5000)
    j = judge(False)
    assert j.decide("a.raw", str(path), Settling(FP, since=0), now=4.9).state is State.WAIT
    assert j.decide("a.raw", str(path), Settling(FP, since=0), now=5.0).state is State.READY
    closed = Settling(FP, since=0, closed=True)
    assert j.decide("a.raw", str(path), closed, now=0.1).state is State.READY


def test_a_cut_file_is_incomplete_once_it_stops_changing(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "whole.mp4", seconds=1.0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:-2000])
    j = judge(False)
    early = j.decide("cut.mp4", str(cut), Settling(FP, since=0), now=1)
    assert early.state is State.WAIT and early.reason.startswith("incomplete so far (MP4")
    late = j.decide("cut.mp4", str(cut), Settling(FP, since=0), now=5)
    assert late.state is State.INCOMPLETE and late.reason.startswith("MP4")


def test_a_network_share_waits_for_the_longer_window(tmp_path: Path) -> None:
    path = str(make_audio(tmp_path / "a.wav", seconds=0.5))
    j = judge(None, network=True)
    assert j.window == 30
    assert j.decide("a.wav", path, Settling(FP, since=0), now=29).state is State.WAIT
    assert j.decide("a.wav", path, Settling(FP, since=0), now=30).state is State.READY


def test_a_ready_marker_is_waited_for_then_trusted(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "a.wav", seconds=0.5)
    j = judge(None, marker="{name}.ready")
    waiting = j.decide("a.wav", str(path), Settling(FP, since=0), now=100)
    assert (waiting.state, waiting.reason) == (
        State.WAIT, "waiting for its ready marker '{name}.ready'")  # fmt: skip
    (tmp_path / "a.wav.ready").write_text("")
    assert j.decide("a.wav", str(path), Settling(FP, since=0), now=0).state is State.READY
