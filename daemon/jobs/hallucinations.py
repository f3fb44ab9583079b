"""The hallucination guard: after the engine, drop text that is almost certainly not speech.

Both engines' transcripts pass through :func:`guard` in the pipeline. Each rule has its
thresholds in ``guard`` (:class:`~daemon.config.GuardSettings`) and a name recorded with
every drop (``Transcript.dropped``, the JSON's ``"dropped"``), so that an operator can
check that nothing real was removed. In order:

1. ``annotation``: the text is only a sound annotation (``[MUSIC]``, ``(applause)``, ``♪``);
2. ``no_speech``: Whisper's own pair, per segment: ``no_speech_prob`` above
   ``guard.no_speech_prob`` and ``avg_logprob`` below ``guard.avg_logprob``;
3. ``outside_speech``: every word of the segment (or the segment, without words) lies
   outside the detected speech, widened by ``guard.speech_margin``;
4. ``phrase_outside_speech``: a stock phrase ("Thank you.") whose words lie mostly outside
   speech. The small per-language list is used nowhere else: it is language-bound, and
   inside speech the phrase may be real;
5. ``words_outside_speech``: words outside speech are cut from a kept segment;
6. ``loop``: a phrase repeated ``guard.loop_limit`` times in a row inside one segment
   (covering at least 12 characters, so "no, no, no, no" stays) is cut back to one;
7. ``repetition``: the same text ``guard.repeat_limit`` times in a row keeps the first.

``hallucination_silence_threshold`` is the engines' own rule (an option of both
``transcribe`` calls, :mod:`daemon.engines`), set in the same section.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from daemon.config import GuardSettings
from daemon.transcript import Dropped, Region, Segment, Transcript, Word

STOCK_PHRASES: dict[str, frozenset[str]] = {
    "en": frozenset({
        "thank you", "thanks", "thank you very much", "thanks for watching",
        "thank you for watching", "please subscribe", "bye", "you", "so", "okay",
        "subtitles by the amara org community",
    }),
    "es": frozenset({
        "gracias", "gracias por ver", "suscríbete",
        "subtítulos realizados por la comunidad de amara org",
    }),
}  # fmt: skip
PHRASE_MAX_INSIDE = 0.5  # a stock phrase goes when at most this share of its words is speech
LOOP_MIN_CHARS = 12  # a loop must cover this many characters ("no, no, no, no" stays)
LOOP_MAX_WORDS = 8  # the longest phrase looked for in a loop

_ANNOTATION = re.compile(r"^(\s*(\[[^\]]*\]|\([^)]*\)|[♪♫♬🎵🎶*]+)\s*)+$")
_NOT_WORD = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    """Lower case, punctuation removed, spaces collapsed (for comparing phrases)."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def guard(transcript: Transcript, settings: GuardSettings) -> Transcript:
    """``transcript`` without what is almost certainly not speech; the drops recorded.

    The speech regions of the transcript (``None`` when detection was off) enable the
    rules that compare words with speech. Kept segments are renumbered from 0.
    """
    if not settings.enabled:
        return transcript
    regions = transcript.speech if settings.outside_speech else None
    dropped: list[Dropped] = []
    kept: list[Segment] = []
    for seg in transcript.segments:
        reason = _verdict(seg, regions, settings, transcript.language)
        if reason is not None:
            dropped.append(_record(seg, reason))
            continue
        if regions is not None:
            seg = _trim_outside(seg, regions, settings.speech_margin, dropped)
        kept.append(_cut_loops(seg, settings.loop_limit, dropped))
    kept = _drop_repeats(kept, settings.repeat_limit, dropped)
    if not dropped:
        return transcript
    segments = tuple(replace(s, id=k) for k, s in enumerate(kept))
    return replace(
        transcript,
        segments=segments,
        text="".join(s.text for s in segments).strip(),
        dropped=tuple(sorted(dropped, key=lambda d: (d.start, d.end))),
    )


def _inside(start: float, end: float, regions: Sequence[Region], margin: float) -> bool:
    return any(start <= e + margin and end >= s - margin for s, e in regions)


def _flags(seg: Segment, regions: Sequence[Region], margin: float) -> list[bool]:
    """Per word (or for the whole segment, without words): does it lie in speech?"""
    if seg.words:
        return [_inside(w.start, w.end, regions, margin) for w in seg.words]
    return [_inside(seg.start, seg.end, regions, margin)]


def _record(seg: Segment, reason: str, text: str | None = None) -> Dropped:
    return Dropped(
        round(seg.start, 3), round(seg.end, 3), (seg.text if text is None else text).strip(), reason
    )


def _with_words(seg: Segment, words: Sequence[Word]) -> Segment:
    text = "".join(w.word for w in words)
    return replace(seg, words=tuple(words), text=text, start=words[0].start, end=words[-1].end)


def _verdict(
    seg: Segment, regions: Sequence[Region] | None, o: GuardSettings, language: str
) -> str | None:
    """The reason to drop the whole segment, or None to keep it."""
    if not seg.text.strip():
        return "empty"
    if o.annotations and _ANNOTATION.match(seg.text):
        return "annotation"
    if (
        o.no_speech_prob is not None
        and seg.no_speech_prob is not None
        and seg.no_speech_prob > o.no_speech_prob
        and (o.avg_logprob is None or (seg.avg_logprob is not None
                                       and seg.avg_logprob < o.avg_logprob))
    ):  # fmt: skip
        return "no_speech"
    if regions is None:
        return None
    flags = _flags(seg, regions, o.speech_margin)
    if not any(flags):
        return "outside_speech"
    phrases = STOCK_PHRASES.get(language, frozenset()) if o.stock_phrases else frozenset()
    if normalise(seg.text) in phrases and sum(flags) / len(flags) <= PHRASE_MAX_INSIDE:
        return "phrase_outside_speech"
    return None


def _trim_outside(
    seg: Segment, regions: Sequence[Region], margin: float, dropped: list[Dropped]
) -> Segment:
    if not seg.words:
        return seg
    flags = _flags(seg, regions, margin)
    if all(flags):
        return seg
    pairs = list(zip(seg.words, flags, strict=True))
    outside = replace(seg, start=min(w.start for w, f in pairs if not f),
                      end=max(w.end for w, f in pairs if not f))  # fmt: skip
    dropped.append(
        _record(outside, "words_outside_speech", "".join(w.word for w, f in pairs if not f))
    )
    return _with_words(seg, [w for w, f in pairs if f])


def _loop(tokens: Sequence[str], limit: int) -> tuple[int, int] | None:
    """(start, end) tokens to delete: the repeats of a phrase seen ``limit``+ times in a row."""
    for n in range(1, LOOP_MAX_WORDS + 1):
        for i in range(0, len(tokens) - n * limit + 1):
            gram = tokens[i : i + n]
            reps = 1
            while tokens[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= limit and reps * len(" ".join(gram)) >= LOOP_MIN_CHARS:
                return i + n, i + reps * n
    return None


def _cut_loops(seg: Segment, limit: int | None, dropped: list[Dropped]) -> Segment:
    if limit is None:
        return seg
    if seg.words:
        cut = _loop([normalise(w.word) for w in seg.words], limit)
        if cut is None:
            return seg
        a, b = cut
        dropped.append(_record(seg, "loop", "".join(w.word for w in seg.words[a:b])))
        return _cut_loops(_with_words(seg, [*seg.words[:a], *seg.words[b:]]), limit, dropped)
    tokens = seg.text.split()
    cut = _loop([normalise(t) for t in tokens], limit)
    if cut is None:
        return seg
    dropped.append(_record(seg, "loop", " ".join(tokens[cut[0] : cut[1]])))
    rest = " " + " ".join(tokens[: cut[0]] + tokens[cut[1] :])
    return _cut_loops(replace(seg, text=rest), limit, dropped)


def _drop_repeats(segs: list[Segment], limit: int | None, dropped: list[Dropped]) -> list[Segment]:
    if limit is None:
        return segs
    out: list[Segment] = []
    k = 0
    while k < len(segs):
        key = normalise(segs[k].text)
        run = k + 1
        while run < len(segs) and key and normalise(segs[run].text) == key:
            run += 1
        out.append(segs[k])
        if run - k >= limit:
            dropped += [_record(s, "repetition") for s in segs[k + 1 : run]]
        else:
            out += segs[k + 1 : run]
        k = run
    return out
