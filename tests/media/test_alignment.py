"""Decoded audio on the video's clock: a track that starts 2 s after the video says so
(``Audio.offset``), whatever carries the delay (Matroska block times, an MP4 edit list that
FFmpeg applies itself), holes in a track's timestamps become the silence a player plays,
and a transcript moves onto that clock."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from daemon.media import SAMPLE_RATE, decode
from daemon.transcript import Segment, Transcript, Word
from tests.librarymedia import AAC_PRIMING, DELAY, LibraryMedia


def first_energy(samples: np.ndarray, threshold: float = 0.02) -> float:
    """Seconds into ``samples`` of the first 10 ms window whose RMS exceeds ``threshold``."""
    n = len(samples) // 160 * 160
    rms = np.sqrt((samples[:n].reshape(-1, 160) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > threshold)
    assert loud.size, "no energy at all"
    return float(loud[0]) * 0.01


@pytest.mark.parametrize(("which", "stream"), [("two_audio_mkv", 2), ("delayed_mp4", 1)])
def test_a_delayed_track_starts_at_its_first_sample_and_says_where(
    library_media: LibraryMedia, which: str, stream: int
) -> None:
    audio = decode(getattr(library_media, which), stream=stream)
    assert first_energy(audio.samples) < 0.2, "samples start at the track's first sample"
    assert audio.offset == pytest.approx(DELAY - AAC_PRIMING, abs=0.03)
    assert first_energy(audio.samples) + audio.offset == pytest.approx(DELAY, abs=0.1)
    assert audio.duration == pytest.approx(1.95, abs=0.1)  # not taken for truncated


def test_tracks_that_start_with_the_video_have_no_offset(library_media: LibraryMedia) -> None:
    assert decode(library_media.two_audio_mkv, stream=1).offset == pytest.approx(0, abs=0.03)
    assert decode(library_media.plain_mkv).offset == pytest.approx(0, abs=0.03)
    assert decode(library_media.plain_mp4).offset == pytest.approx(0, abs=0.03)


def test_the_decoded_track_is_described(library_media: LibraryMedia) -> None:
    audio = decode(library_media.commentary_mkv, stream=1)
    assert (audio.stream_index, audio.language, audio.title) == (
        1, "eng", "Director's Commentary")  # fmt: skip


def make_gappy_mkv(path: Path, before: float = 1.0, hole: float = 1.5, after: float = 1.0) -> Path:
    """PCM in Matroska: a 440 Hz tone, a hole in the timestamps, then the tone again."""
    rate = SAMPLE_RATE
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        for start, seconds in ((0.0, before), (before + hole, after)):
            for k in range(round(seconds * 10)):  # 100 ms frames
                t = np.arange(rate // 10) / rate
                tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = rate
                frame.pts = round((start + k / 10) * rate)
                frame.time_base = Fraction(1, rate)
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_a_hole_in_the_timestamps_is_filled_with_silence(tmp_path: Path) -> None:
    audio = decode(make_gappy_mkv(tmp_path / "gap.mkv"))
    assert audio.gap_seconds == pytest.approx(1.5, abs=0.02)
    assert audio.duration == pytest.approx(3.5, abs=0.02)
    assert np.abs(audio.samples[int(1.1 * SAMPLE_RATE) : int(2.4 * SAMPLE_RATE)]).max() == 0
    second = audio.samples[int(1.1 * SAMPLE_RATE) :]
    assert 1.1 + first_energy(second) == pytest.approx(2.5, abs=0.02)


def test_a_transcript_moves_onto_the_playback_clock() -> None:
    words = (Word(0.1, 0.4, " in", 0.9), Word(0.4, 1.2, " being", 0.8))
    segments = (Segment(0, 0.1, 1.2, " in being", words), Segment(1, 1.5, 1.9, " modern"))
    t = Transcript("x", "en", None, segments, 5.0, "tiny.en", "test")
    moved = t.shifted(1.975)
    assert [(s.start, s.end) for s in moved.segments] == [
        pytest.approx((2.075, 3.175)),
        pytest.approx((3.475, 3.875)),
    ]
    first_words = moved.segments[0].words
    assert first_words is not None and first_words[1].start == pytest.approx(2.375)
    assert moved.segments[1].words is None
    assert moved.extra["playback_offset"] == pytest.approx(1.975)
    assert moved.duration == t.duration and t.segments[0].start == 0.1  # the original is kept
    back = t.shifted(-0.5)
    assert back.segments[0].start == 0.0 and back.segments[1].start == pytest.approx(1.0)
    assert t.shifted(0.0) is t
