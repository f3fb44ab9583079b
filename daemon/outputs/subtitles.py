"""Readable subtitles of a transcript: the cues, their rule report, what the writers get.

Everything comes from what a transcript (and so the JSON) stores: the segments with their
words, the speech regions and the language; so ``srt`` and ``vtt`` can be rendered again
from a JSON without the audio. :func:`readable_cues` resolves the limits of ``subtitles:`` for
the language (null width or speed: the language's own), builds the cues
(:mod:`daemon.outputs.cues`) and checks every cue against every rule (:func:`report`).

A segment without word timings (an engine run without them, an old JSON) still gets cues:
its words are spread over the segment's time by their length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daemon.config import SubtitleSettings
from daemon.outputs.cues import Cue, Limits, build_cues
from daemon.outputs.textlayout import (
    CPS,
    CPS_BY_LANGUAGE,
    LINE_COUNT,
    LINE_WIDTH,
    LINE_WIDTH_BY_LANGUAGE,
    NO_SPACE_LANGUAGES,
    Box,
    display_width,
)
from daemon.transcript import Segment, Transcript, Word

_EPS = 0.0011  # cue times are whole milliseconds: allow their rounding


@dataclass(frozen=True)
class Subtitles:
    cues: tuple[Cue, ...]
    limits: Limits
    language: str

    @property
    def report(self) -> dict[str, Any]:
        return report(self.cues, self.limits, self.language)


def limits(settings: SubtitleSettings, language: str) -> Limits:
    """The limits of ``settings`` for ``language``: null width and speed take its own."""
    width = settings.max_line_width or LINE_WIDTH_BY_LANGUAGE.get(language, LINE_WIDTH)
    cps = settings.max_cps or CPS_BY_LANGUAGE.get(language, CPS)
    box = Box(width, settings.max_line_count or LINE_COUNT, settings.max_words_per_line)
    return Limits(box, cps, settings.min_duration, settings.max_duration, settings.min_gap,
                  settings.max_pause)  # fmt: skip


def spread(segment: Segment) -> tuple[Word, ...]:
    """A segment's words: its own timings, or its text spread over its time by length."""
    if segment.words:
        return segment.words
    tokens = segment.text.split()
    total = sum(len(t) + 1 for t in tokens) or 1
    out, at = [], segment.start
    step = max(0.0, segment.end - segment.start) / total
    for token in tokens:
        end = at + (len(token) + 1) * step
        out.append(Word(round(at, 3), round(end, 3), " " + token, 0.0))
        at = end
    return tuple(out)


def readable_cues(transcript: Transcript, settings: SubtitleSettings) -> Subtitles:
    """The readable cues of ``transcript`` under ``settings`` (style readable)."""
    language = transcript.language
    found = limits(settings, language)
    words = [w for seg in transcript.segments for w in spread(seg)]
    cues = build_cues(words, found, language=language, speech=transcript.speech)
    return Subtitles(tuple(cues), found, language)


def _characters(cue: Cue, spaced: bool) -> int:
    """What a viewer reads: the lines, a line break counting as a space."""
    return sum(display_width(line) for line in cue.lines) + (len(cue.lines) - 1) * spaced


def checks(cue: Cue, nxt: Cue | None, o: Limits, spaced: bool = True) -> dict[str, bool]:
    """Which rules one cue meets (``nxt``: the cue after it, for the gap).

    A line wider than the limit passes when it is one word (a word is never broken). The
    pause rule holds by construction (cues never span a pause over ``max_pause``).
    """
    duration = cue.end - cue.start
    words = o.box.words
    return {
        "line_count": len(cue.lines) <= o.box.lines,
        "line_width": all(
            display_width(line) <= o.box.width or (spaced and " " not in line) for line in cue.lines
        ),
        "words_per_line": words is None or all(len(line.split()) <= words for line in cue.lines),
        "reading_speed": _characters(cue, spaced) <= o.max_cps * duration + 1e-9,
        "min_duration": duration >= o.min_duration - _EPS,
        "max_duration": duration <= o.max_duration + _EPS,
        "min_gap": nxt is None or nxt.start - cue.end >= o.min_gap - _EPS,
    }


def report(cues: Sequence[Cue], o: Limits, language: str) -> dict[str, Any]:
    """Share of cues within each rule and within all of them, the worst reading speed."""
    spaced = language not in NO_SPACE_LANGUAGES
    found = [checks(c, cues[k + 1] if k + 1 < len(cues) else None, o, spaced)
             for k, c in enumerate(cues)]  # fmt: skip
    n = len(cues)
    rules = list(found[0]) if found else []
    speeds = [_characters(c, spaced) / max(c.end - c.start, 1e-3) for c in cues]
    return {
        "count": n,
        "within": {r: round(sum(ch[r] for ch in found) / n, 4) for r in rules},
        "within_all": round(sum(all(ch.values()) for ch in found) / n, 4) if n else 1.0,
        "max_cps": round(max(speeds), 2) if speeds else 0.0,
        "limits": {
            "max_line_count": o.box.lines,
            "max_line_width": o.box.width,
            "max_words_per_line": o.box.words,
            "max_cps": o.max_cps,
            "min_duration": o.min_duration,
            "max_duration": o.max_duration,
            "min_gap": o.min_gap,
            "max_pause": o.max_pause,
        },
        "outside": [
            {"start": c.start, "end": c.end, "text": c.text,
             "rules": [r for r, ok in ch.items() if not ok]}
            for c, ch in zip(cues, found, strict=True) if not all(ch.values())
        ][:20],
    }  # fmt: skip


def _underlined(cue: Cue, k: int) -> str:
    """The cue's lines with word ``k`` underlined (``<u>``, as whisper's highlight_words)."""
    lines, index = [], 0
    for line in cue.lines:
        pos, out = 0, ""
        while index < len(cue.words):
            text = cue.words[index][0]
            found = line.find(text, pos)
            if found < 0:
                break
            piece = f"<u>{text}</u>" if index == k else text
            out += line[pos:found] + piece
            pos = found + len(text)
            index += 1
        lines.append(out + line[pos:])
    return "\n".join(lines)


def writer_segments(subs: Subtitles, highlight: bool) -> list[dict[str, Any]]:
    """The cues as segments for whisper's srt/vtt writers (one cue each, lines kept).

    With ``highlight``, each cue becomes one cue per word, that word underlined, from its
    start to the next word's (the first from the cue's start, the last to its end).
    """
    out: list[dict[str, Any]] = []
    for cue in subs.cues:
        if not highlight or not cue.words:
            out.append({"start": cue.start, "end": cue.end, "text": "\n".join(cue.lines)})
            continue
        starts = [cue.start] + [max(cue.start, min(w[1], cue.end)) for w in cue.words[1:]]
        ends = [*starts[1:], cue.end]
        for k, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if end > start:
                out.append({"start": start, "end": end, "text": _underlined(cue, k)})
    return out


def json_block(subs: Subtitles) -> dict[str, Any]:
    """The JSON's ``subtitles``: the cues, and the report of the rules they meet."""
    return {
        "style": "readable",
        "cues": [{"start": c.start, "end": c.end, "lines": list(c.lines)} for c in subs.cues],
        **subs.report,
    }
