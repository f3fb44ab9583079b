"""Reading a stored JSON output back into a transcript: the input of ``whisperd render``.

:func:`read_transcript` is the inverse of :func:`daemon.outputs.writers.render_json`: the
segments (with their words when word timings were computed), the language, the detected
speech regions and what the guard dropped, and what produced them, so every other format
can be written again with the current settings without running the engine.
:func:`missing_words` says whether the stored segments can serve subtitle options that cut
cues at words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.errors import OutputError
from daemon.transcript import Dropped, Segment, Transcript, Word


class StoredTranscriptError(OutputError):
    """A JSON output that cannot be read back (missing, not ours, damaged)."""


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) else default


def _word(item: dict[str, Any]) -> Word:
    return Word(start=_number(item.get("start")), end=_number(item.get("end")),
                word=str(item.get("word", "")),
                probability=_number(item.get("probability"), 1.0))  # fmt: skip


def _segment(index: int, item: dict[str, Any]) -> Segment:
    words = item.get("words")
    return Segment(
        id=int(item.get("id", index)),
        start=_number(item.get("start")),
        end=_number(item.get("end")),
        text=str(item.get("text", "")),
        words=tuple(_word(w) for w in words) if isinstance(words, list) else None,
        avg_logprob=item.get("avg_logprob"),
        no_speech_prob=item.get("no_speech_prob"),
        compression_ratio=item.get("compression_ratio"),
        temperature=item.get("temperature"),
    )


def read_transcript(path: Path) -> tuple[Transcript, dict[str, Any]]:
    """The transcript stored in a JSON output, and the rest of the document (its meta)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoredTranscriptError(f"{path}: the JSON output is gone") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise StoredTranscriptError(f"{path}: cannot read the JSON output ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("segments"), list):
        raise StoredTranscriptError(f"{path}: not a whisperd JSON output (no segments)")
    try:
        segments = tuple(_segment(i, s) for i, s in enumerate(doc["segments"]))
    except (AttributeError, TypeError, ValueError) as err:
        raise StoredTranscriptError(f"{path}: damaged segments ({err})") from None
    transcript = Transcript(
        speech=_speech(doc.get("speech")),
        dropped=_dropped(doc.get("dropped")),
        text=str(doc.get("text", "")),
        language=str(doc.get("language") or "und"),
        language_probability=doc.get("language_probability"),
        segments=segments,
        duration=_number(doc.get("audio_duration"), segments[-1].end if segments else 0.0),
        model=str(doc.get("model", "")),
        engine=str(doc.get("engine", "")),
    )
    meta = {k: v for k, v in doc.items() if k not in DERIVED}
    return transcript, meta


# What the JSON writer makes from the transcript and its cues (not carried over as meta).
DERIVED = frozenset({"text", "language", "language_probability", "segments", "speech",
                     "speech_seconds", "dropped", "subtitles"})  # fmt: skip


def _speech(value: Any) -> tuple[tuple[float, float], ...] | None:
    """The detected speech regions (None: detection was off, or an older JSON)."""
    if not isinstance(value, list):
        return None
    return tuple((_number(r[0]), _number(r[1])) for r in value
                 if isinstance(r, list | tuple) and len(r) == 2)  # fmt: skip


def _dropped(value: Any) -> tuple[Dropped, ...]:
    """What the hallucination guard removed, kept in the JSON for the operator."""
    if not isinstance(value, list):
        return ()
    return tuple(Dropped(start=_number(d.get("start")), end=_number(d.get("end")),
                         text=str(d.get("text", "")), reason=str(d.get("reason", "")))
                 for d in value if isinstance(d, dict))  # fmt: skip


def missing_words(transcript: Transcript) -> bool:
    """True when a segment with text has no word timings (they were not computed)."""
    return any(s.words is None for s in transcript.segments if s.text.strip())
