"""What an engine returns: a transcript with timed segments (and words), engine-neutral.

Writers in :mod:`daemon.outputs` consume only these types, so every engine produces the same
files. ``to_whisper_result`` gives the dict shape openai-whisper's own writers expect.

Beside the segments, a transcript carries what the subtitle path learnt: ``speech`` (the
detected speech regions, ``None`` when speech detection was off) and ``dropped`` (what the
hallucination guard removed, and why). Both are stored in the JSON, so that every output
can be rendered again from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

Region = tuple[float, float]  # (start, end) seconds


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str  # as Whisper emits it, with its leading space
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] | None = None  # None unless word timestamps were computed
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class Dropped:
    """Text the hallucination guard removed: a segment, or some words of one."""

    start: float
    end: float
    text: str
    reason: str  # e.g. "outside_speech", "no_speech", "repetition" (daemon.jobs.hallucinations)


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str  # Whisper language code of the audio (detected or configured)
    language_probability: float | None  # None when the language was configured, not detected
    segments: tuple[Segment, ...]
    duration: float  # seconds of audio transcribed
    model: str
    engine: str
    extra: dict[str, Any] = field(default_factory=dict)
    speech: tuple[Region, ...] | None = None  # detected speech; None: detection was off
    dropped: tuple[Dropped, ...] = ()  # what the hallucination guard removed

    def shifted(self, seconds: float) -> Transcript:
        """A copy with every segment, word, speech region and dropped text moved by
        ``seconds`` (onto the video's playback clock); times before 0:00 become 0.
        ``duration`` stays the audio's length; the shift is recorded in
        ``extra["playback_offset"]``."""
        if seconds == 0:
            return self

        def move(t: float) -> float:
            return max(0.0, t + seconds)

        segments = tuple(
            replace(
                seg,
                start=move(seg.start),
                end=move(seg.end),
                words=None if seg.words is None else tuple(
                    replace(w, start=move(w.start), end=move(w.end)) for w in seg.words),
            )
            for seg in self.segments
        )  # fmt: skip
        extra = {**self.extra, "playback_offset": self.extra.get("playback_offset", 0.0) + seconds}
        speech = None if self.speech is None else tuple(
            (move(start), move(end)) for start, end in self.speech)  # fmt: skip
        dropped = tuple(replace(d, start=move(d.start), end=move(d.end)) for d in self.dropped)
        return replace(self, segments=segments, extra=extra, speech=speech, dropped=dropped)

    def to_whisper_result(self) -> dict[str, Any]:
        """The ``result`` dict of ``whisper.transcribe`` (input of ``whisper.utils`` writers)."""
        segments = []
        for seg in self.segments:
            item: dict[str, Any] = {
                "id": seg.id,
                "start": seg.start,
                "end": seg.end,
                "text": seg.text,
            }
            if seg.words is not None:
                item["words"] = [asdict(w) for w in seg.words]
            segments.append(item)
        return {"text": self.text, "segments": segments, "language": self.language}
