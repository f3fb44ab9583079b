"""The clip plan both engines follow on speech regions, and the loop that runs it."""

from __future__ import annotations

import numpy as np

from daemon.engines.speech import last_frame, missed, plan, speech_audio, transcribe
from daemon.transcript import Segment, Word

REGIONS = [(1.0, 5.0), (6.0, 14.0), (15.5, 29.0), (29.4, 33.0), (60.0, 62.0)]


def test_a_long_silence_starts_a_new_stretch_and_is_never_decoded() -> None:
    stretches = plan(REGIONS, 70.0)
    assert [s.clips for s in stretches] == [((1.0, 33.0),), ((60.0, 62.0),)]
    assert [(s.start, s.end) for s in stretches] == [(1.0, 33.5), (60.0, 62.5)]
    assert stretches[0].regions == tuple(REGIONS[:4])


def test_for_the_batched_pipeline_a_stretch_is_cut_at_its_longest_pause() -> None:
    # the 1.5 s pause at 14.0 is the longest inside the first 32 s stretch
    (first, _) = plan(REGIONS, 70.0, max_clip=30.0)
    assert first.clips == ((1.0, 14.0), (15.5, 33.0))
    assert plan([(0.0, 40.0)], 45.0, max_clip=30.0)[0].clips == ((0.0, 40.0),)  # one region


def test_clip_ends_stay_before_the_last_mel_frame() -> None:
    # openai-whisper would loop forever on an end past the last whole frame
    assert plan([(0.0, 45.0)], 45.0)[0].clips == ((0.0, 44.99),)
    assert plan([(1.0, 10.448)], 10.448)[0].clips == ((1.0, 10.43),)
    assert last_frame(10.0) == 9.99 and plan([], 45.0) == []


def _hi(start: float, end: float) -> Segment:
    return Segment(7, start, end, " hi", (Word(start, end, " hi", 0.9),))


def test_each_stretch_is_one_call_on_its_own_audio_and_times_come_back_absolute() -> None:
    samples = np.arange(70 * 16000, dtype=np.float32)
    calls: list[tuple[float, list[float] | None]] = []
    fractions: list[float] = []

    def call(audio: np.ndarray, clips, report) -> list[Segment]:
        calls.append((audio[0] / 16000, clips))
        report(0.5)
        if audio[0] / 16000 == 60.0:
            return [_hi(0.5, 1.5)]
        return [_hi(0.5, 3.0), _hi(5.5, 12.0), _hi(15.0, 27.0), _hi(28.6, 31.0)]

    segments = transcribe(samples, REGIONS, call, fractions.append)
    assert calls == [(1.0, [0.0, 32.0]), (60.0, [0.0, 2.0])]
    assert [(s.id, s.start, s.words[0].start) for s in segments][-1] == (4, 60.5, 60.5)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert transcribe(samples, [], call) == [] and len(calls) == 2  # no speech: no call
    assert len(transcribe(samples, None, call)) == 4 and calls[-1] == (0.0, None)


def test_speech_that_came_back_without_words_is_decoded_again_on_its_own() -> None:
    samples = np.zeros(70 * 16000, dtype=np.float32)
    calls: list[list[float] | None] = []

    def call(audio: np.ndarray, clips, report) -> list[Segment]:
        calls.append(clips)
        if len(calls) == 1:  # the window ended early: the 6-14 s region has one word
            return [_hi(0.5, 3.0), _hi(5.2, 5.6), _hi(15.0, 31.0)]
        return [_hi(clips[0] + 0.2, clips[1] - 0.2)]

    segments = transcribe(samples, REGIONS[:4], call)
    assert calls == [[0.0, 32.0], [5.0, 13.0]]  # the region again, relative to the stretch
    assert [(s.start, s.end) for s in segments] == [(1.5, 4.0), (6.2, 6.6), (6.2, 13.8),
                                                    (16.0, 32.0)]  # fmt: skip
    assert [s.id for s in segments] == [0, 1, 2, 3]


def test_missed_speech_needs_a_second_of_speech_with_hardly_a_word() -> None:
    words = [_hi(1.0, 2.0)]
    assert missed([(0.0, 4.0)], words) == []  # a quarter covered: Whisper heard it
    assert missed([(0.0, 4.1)], words) == [(0.0, 4.1)]
    assert missed([(10.0, 10.9)], words) == []  # too short to matter
    plain = [Segment(0, 0.0, 4.0, " hi", None)]  # no word times: the segments count
    assert missed([(0.0, 4.0), (5.0, 7.0)], plain) == [(5.0, 7.0)]


def test_language_is_detected_on_speech() -> None:
    samples = np.arange(100 * 16000, dtype=np.float32)
    heard = speech_audio(samples, [(10.0, 30.0), (50.0, 80.0)], 30)
    assert len(heard) == 30 * 16000
    assert heard[0] == 10 * 16000 and heard[-1] == 60 * 16000 - 1
