"""Speech detection: Silero VAD on real speech clips and on synthetic non-speech."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from daemon.config import VadSettings
from daemon.media import detect_speech
from daemon.media.vad import pad
from tests import programmes as P

ON = VadSettings()


@pytest.fixture(scope="module")
def speech_in_silence() -> P.Programme:
    """4 s of digital silence, a clean LJSpeech clip (9.7 s), 5 s of pink noise at -32 dBFS."""
    (clip,) = [c for c in P.english() if c.path.name == "LJ001-0001.wav"]
    return P.assemble("lj", [("gap", P.silence(4.0)), ("clip", clip), ("gap", P.pink_noise(5.0))])


def covered(truth, regions) -> float:
    inside = sum(max(0.0, min(e, b) - max(s, a)) for s, e in truth for a, b in regions)
    return inside / sum(e - s for s, e in truth)


def test_regions_cover_the_speech_and_not_the_silence_around_it(speech_in_silence) -> None:
    ticks: list[int] = []
    regions = detect_speech(speech_in_silence.samples, ON, tick=lambda: ticks.append(1))
    assert covered(speech_in_silence.speech, regions) >= 0.99
    first_word = speech_in_silence.speech[0][0]
    assert first_word - 0.5 <= regions[0][0] <= first_word
    clip_end = speech_in_silence.duration - 5.0
    assert regions[-1][1] <= clip_end + 0.7  # ends with the clip, not in the pink noise
    assert list(regions) == sorted(regions)
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(regions))
    assert 10 <= len(ticks) <= 51  # every 2 % of the file: the worker's heartbeat


@pytest.mark.parametrize("kind", sorted(P.NON_SPEECH))
def test_non_speech_alone_gives_no_regions(kind: str) -> None:
    assert detect_speech(P.NON_SPEECH[kind](20.0), ON) == ()


def test_padding_is_a_setting(speech_in_silence) -> None:
    tight = detect_speech(speech_in_silence.samples, VadSettings(speech_pad_ms=0))
    wide = detect_speech(speech_in_silence.samples, VadSettings(speech_pad_ms=400))
    assert wide[0][0] == pytest.approx(tight[0][0] - 0.4, abs=0.002)
    assert len(wide) <= len(tight)


def test_a_raising_tick_stops_detection(speech_in_silence) -> None:
    class Stop(Exception):
        pass

    def tick() -> None:
        raise Stop

    with pytest.raises(Stop):
        detect_speech(speech_in_silence.samples, ON, tick=tick)
    assert detect_speech(speech_in_silence.samples, ON)  # the shared model still works


def test_concurrent_callers_get_the_same_regions(speech_in_silence) -> None:
    expected = detect_speech(speech_in_silence.samples, ON)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(
        detect_speech(speech_in_silence.samples, ON))) for _ in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [expected] * 3


def test_tiny_input_has_no_speech() -> None:
    assert detect_speech(np.zeros(100, np.float32), ON) == ()


def test_padding_stays_within_the_audio_and_half_the_pause() -> None:
    assert pad([(0.1, 1.0), (1.2, 2.0), (5.0, 9.9)], 10.0, 0.2) == (
        (0.0, 1.1), (1.1, 2.2), (4.8, 10.0),
    )  # fmt: skip
    assert pad([(1.0, 2.0), (1.5, 3.0)], 10.0, 0.2) == ((0.8, 3.2),)


def test_long_speech_is_split_into_regions_that_fit_a_window() -> None:
    by_name = {c.path.name: c for c in P.english()}
    talk = P.assemble("talk", [("clip", by_name[f"LJ001-000{k}.wav"]) for k in range(1, 9)])
    regions = detect_speech(talk.samples, VadSettings(max_speech_s=20.0))
    assert max(e - s for s, e in regions) <= 20.0 + 0.4
    assert covered(talk.speech, regions) >= 0.99


def test_missing_silero_vad_is_a_clear_environment_error(monkeypatch) -> None:
    import sys

    from daemon.errors import SpeechDetectionError
    from daemon.media import vad

    monkeypatch.setattr(vad, "_model", None)
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    with pytest.raises(SpeechDetectionError, match="needs the silero-vad package") as info:
        vad._load()
    assert info.value.environment
