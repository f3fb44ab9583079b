"""The clip plan both engines follow on speech regions, and the loop that runs it."""

from __future__ import annotations

import numpy as np

from daemon.engines.speech import last_frame, plan, speech_audio, transcribe
from daemon.transcript import Segment, Word

REGIONS = [(1.0, 5.0), (6.0, 14.0), (15.5, 29.0), (29.4, 33.0), (60.0, 62.0)]


def test_a_long_silence_starts_a_new_stretch_and_is_never_decoded() -> None:
    stretches = plan(REGIONS, 70.0)
    assert [s.clips for s in stretches] == [((1.0, 14.0), (15.5, 33.0)), ((60.0, 62.0),)]
    assert [(s.start, s.end) for s in stretches] == [(1.0, 33.5), (60.0, 62.5)]


def test_a_stretch_longer_than_a_window_is_cut_at_its_longest_pause() -> None:
    # the 1.5 s pause at 14.0 is the longest inside the first 32 s stretch
    (first, _) = plan(REGIONS, 70.0)
    assert all(e - s <= 30.0 for s, e in first.clips)
    assert first.clips[0][1] == 14.0 and first.clips[1][0] == 15.5


def test_clip_ends_stay_before_the_last_mel_frame() -> None:
    # openai-whisper would loop forever on an end past the last whole frame
    assert plan([(0.0, 45.0)], 45.0)[0].clips == ((0.0, 44.99),)
    assert plan([(1.0, 10.448)], 10.448)[0].clips == ((1.0, 10.43),)
    assert last_frame(10.0) == 9.99 and plan([], 45.0) == []


def test_each_stretch_is_one_call_on_its_own_audio_and_times_come_back_absolute() -> None:
    samples = np.arange(70 * 16000, dtype=np.float32)
    calls: list[tuple[float, list[float] | None]] = []
    fractions: list[float] = []

    def call(audio: np.ndarray, clips, report) -> list[Segment]:
        calls.append((audio[0] / 16000, clips))
        report(0.5)
        word = Word(0.5, 1.0, " hi", 0.9)
        return [Segment(7, 0.5, 1.0, " hi", (word,))]

    segments = transcribe(samples, REGIONS, call, fractions.append)
    assert calls == [(1.0, [0.0, 13.0, 14.5, 32.0]), (60.0, [0.0, 2.0])]
    assert [(s.id, s.start, s.words[0].start) for s in segments] == [(0, 1.5, 1.5),
                                                                    (1, 60.5, 60.5)]  # fmt: skip
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert transcribe(samples, [], call) == [] and len(calls) == 2  # no speech: no call
    assert len(transcribe(samples, None, call)) == 1 and calls[-1] == (0.0, None)


def test_language_is_detected_on_speech() -> None:
    samples = np.arange(100 * 16000, dtype=np.float32)
    heard = speech_audio(samples, [(10.0, 30.0), (50.0, 80.0)], 30)
    assert len(heard) == 30 * 16000
    assert heard[0] == 10 * 16000 and heard[-1] == 60 * 16000 - 1
