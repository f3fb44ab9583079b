"""Helpers shared by the tests of this folder (split from test_outputs.py)."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.config import SubtitleSettings
from daemon.transcript import Segment, Transcript, Word

PLAIN = SubtitleSettings(style="whisper")  # Whisper's own segments, unwrapped


META = {
    "source": "team/meeting 1.mp3",
    "settings": {"model": "tiny.en", "task": "transcribe", "language": None},
    "processing_seconds": 1.23456,
    "created_at": "2024-05-01T12:00:00+00:00",
}


def _words(start: float, text: str, step: float = 0.4) -> tuple[Word, ...]:
    out = []
    for i, token in enumerate(text.split()):
        s = round(start + i * step, 3)
        out.append(Word(start=s, end=round(s + step * 0.9, 3), word=" " + token, probability=0.9))
    return tuple(out)


SEGMENT_TEXTS = [
    (0.0, " Hello world, this is the first sentence of a rather long test."),
    (5.0, " Ça marche très bien, déjà vu — naïve façade."),
    (9.0, " 日本語 も 大丈夫 です"),
]


def make_transcript(with_words: bool = True) -> Transcript:
    segments = []
    for i, (start, text) in enumerate(SEGMENT_TEXTS):
        words = _words(start, text) if with_words else None
        end = words[-1].end if words else start + 3.5
        segments.append(
            Segment(
                id=i,
                start=start,
                end=end,
                text=text,
                words=words,
                avg_logprob=-0.123456,
                no_speech_prob=0.0123456,
                compression_ratio=1.23456,
                temperature=0.0,
            )
        )
    return Transcript(
        text="".join(t for _, t in SEGMENT_TEXTS),
        language="en",
        language_probability=0.987654,
        segments=tuple(segments),
        duration=12.3456,
        model="tiny.en",
        engine="openai-whisper",
    )


def vtt_seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def expected_texts() -> list[str]:
    return [t.strip() for _, t in SEGMENT_TEXTS]


def temp_files(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".whisperd-tmp")]
