"""Readable subtitle cues from word timings (the Netflix / BBC timed-text rules).

:func:`build_cues` turns a transcript's words into cues:

* **where cues end**: runs of words without a pause longer than ``max_pause`` are split by
  dynamic programming over the break points. A cue is possible when its words fit the box
  (``max_line_count`` lines of ``max_line_width``, first fit) and last at most
  ``max_duration``. Each cue costs 0.5, plus its end: 0 at a sentence end, 1 at a clause
  (comma, semicolon, colon) or before a conjunction, 2-3.5 elsewhere (cheaper after a longer
  pause), +1 after an article or a preposition, +1 when a new sentence starts at the end of
  the cue, up to +1 for a cue under 30 characters, +2 when it cannot stay ``min_duration``,
  and a penalty for reading speed over ``max_cps``;
* **timing**: a cue starts with its first word (snapped onto the speech region the word
  reaches into, so nothing is on screen during music or silence); word ends are clamped to
  their region; the end is extended into the following silence for ``max_cps`` and
  ``min_duration``, at most to ``max_duration`` and never closer than ``min_gap`` to the
  next cue;
* **lines**: :func:`daemon.outputs.textlayout.layout` (balanced, bottom-heavy).

Whisper's words are cleaned first: leading spaces, punctuation emitted as its own word,
zero-length or overlapping times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from daemon.outputs.textlayout import (
    NO_SPACE_LANGUAGES,
    Box,
    Token,
    fits,
    is_clause_end,
    is_conjunction,
    is_punctuation,
    is_sentence_end,
    is_weak_end,
    layout,
    width,
)
from daemon.transcript import Region, Word


@dataclass(frozen=True)
class Limits:
    """Every limit of a cue, resolved for one language (:func:`daemon.outputs.subtitles`)."""

    box: Box
    max_cps: float
    min_duration: float
    max_duration: float
    min_gap: float
    max_pause: float


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    words: tuple[tuple[str, float, float], ...] = ()  # (text, start, end): for highlighting

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass
class _W:
    text: str
    space: bool
    start: float
    end: float


def clean_words(words: Sequence[Word], language: str) -> list[_W]:
    """Stripped, time-ordered words: empty ones dropped, lone punctuation glued to the word
    before, a start never before the previous start, an end never before its start."""
    spaced = language not in NO_SPACE_LANGUAGES
    out: list[_W] = []
    for w in words:
        text = (w.word or "").strip()
        if not text:
            continue
        start, end = sorted((float(w.start), float(w.end)))
        if out and is_punctuation(text):
            out[-1].text += text
            out[-1].end = max(out[-1].end, end)
            continue
        space = (spaced and not text.startswith("'")) or w.word[:1].isspace()
        if out:
            start = max(start, out[-1].start)
        out.append(_W(text, space, start, max(end, start)))
    return out


def _tokens(ws: Sequence[_W]) -> list[Token]:
    return [Token(w.text, w.space) for w in ws]


def _chars(ws: Sequence[_W]) -> int:
    return width(_tokens(ws))


# --- where cues end ----------------------------------------------------------------------

_CUE_COST = 0.5  # each cue costs this: fewer, fuller cues unless a better break is needed
_SHORT_CHARS = 30  # a cue shorter than this (characters) costs up to 1 more, if avoidable
_MAX_WORDS = 60  # no cue has more words than this (bounds the search)


def _boundary_cost(ws: Sequence[_W], k: int, language: str) -> float:
    """Cost of ending a cue after word ``k`` (the next cue starts with word ``k + 1``)."""
    word, nxt = ws[k], ws[k + 1]
    if is_sentence_end(word.text, language):
        return 0.0
    if is_clause_end(word.text) or is_conjunction(nxt.text, language):
        cost = 1.0
    else:
        gap = max(0.0, nxt.start - word.end)
        cost = 2.0 + 1.5 * max(0.0, 1.0 - gap / 0.6)  # a longer pause, a cheaper break
    return cost + (1.0 if is_weak_end(word.text, language) else 0.0)


def _feasible(ws: Sequence[_W], i: int, j: int, o: Limits) -> bool:
    if j - i == 1:
        return True
    if ws[j - 1].end - ws[i].start > o.max_duration:
        return False
    return fits(_tokens(ws[i:j]), o.box)


def _cue_cost(ws: Sequence[_W], i: int, j: int, o: Limits, language: str) -> float:
    n = len(ws)
    cost = _CUE_COST + (_boundary_cost(ws, j - 1, language) if j < n else 0.0)
    inner_end = any(is_sentence_end(w.text, language) for w in ws[i : j - 1])
    if inner_end and j < n and not is_sentence_end(ws[j - 1].text, language):
        cost += 1.0  # a new sentence starts at the end of this cue and runs into the next
    chars = _chars(ws[i:j])
    if i > 0 or j < n:  # one of several cues of a run: prefer fuller ones
        cost += max(0.0, 1.0 - chars / _SHORT_CHARS)
    room = min(o.max_duration, (ws[j].start if j < n else math.inf) - o.min_gap - ws[i].start)
    if room < o.min_duration and n > 1:
        cost += 2.0
    cps = chars / max(room, 1e-3)
    if cps > o.max_cps:
        cost += 4.0 * (cps / o.max_cps - 1.0)
    return cost


def split_run(ws: Sequence[_W], o: Limits, language: str) -> list[tuple[int, int]]:
    """The best cue boundaries for a run of words with no long pause (dynamic programming)."""
    n = len(ws)
    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for i in range(n):
        if best[i] == math.inf:
            continue
        for j in range(i + 1, min(n, i + _MAX_WORDS) + 1):
            if not _feasible(ws, i, j, o):
                break
            total = best[i] + _cue_cost(ws, i, j, o, language)
            if total < best[j]:
                best[j], back[j] = total, i
    spans: list[tuple[int, int]] = []
    j = n
    while j > 0:
        spans.append((back[j], j))
        j = back[j]
    return spans[::-1]


def split_runs(ws: Sequence[_W], max_pause: float) -> list[tuple[int, int]]:
    """Index ranges of words separated by pauses longer than ``max_pause``."""
    runs: list[tuple[int, int]] = []
    start = 0
    for k in range(1, len(ws)):
        if ws[k].start - ws[k - 1].end > max_pause:
            runs.append((start, k))
            start = k
    if ws:
        runs.append((start, len(ws)))
    return runs


# --- timing ------------------------------------------------------------------------------


def _region_of(t: float, speech: Sequence[Region]) -> int | None:
    for k, (s, e) in enumerate(speech):
        if s <= t <= e:
            return k
    return None


def snap_start(start: float, end: float, speech: Sequence[Region] | None) -> float:
    """A word starting in non-speech but reaching into a speech region starts where it does."""
    if not speech or _region_of(start, speech) is not None:
        return start
    for s, _e in speech:
        if start < s <= end:
            return s
    return start


def clamp_end(start: float, end: float, speech: Sequence[Region] | None) -> float:
    """A word whose end runs past the end of its speech region ends with the region."""
    k = _region_of(start, speech) if speech else None
    if k is None:
        return end
    return max(start, min(end, speech[k][1]))


def _timed(
    ws: Sequence[_W], spans: Sequence[tuple[int, int]], o: Limits, speech: Sequence[Region] | None
) -> list[tuple[float, float]]:
    """(start, end) of each cue: see the module's docstring."""
    starts = [round(snap_start(ws[i].start, ws[i].end, speech), 3) for i, _ in spans]
    out: list[tuple[float, float]] = []
    for k, (i, j) in enumerate(spans):
        start = starts[k] if not out else max(starts[k], out[-1][1] + o.min_gap)
        needed = max(o.min_duration, _chars(ws[i:j]) / o.max_cps)
        end = round(min(max(ws[j - 1].end, start + needed), start + o.max_duration), 3)
        if k + 1 < len(spans) and end > starts[k + 1] - o.min_gap:
            end = math.floor((starts[k + 1] - o.min_gap) * 1000 + 1e-6) / 1000
        out.append((start, max(end, start + 0.001)))
    return out


def build_cues(
    words: Sequence[Word], o: Limits, *, language: str, speech: Sequence[Region] | None = None
) -> list[Cue]:
    """Cues for ``words`` (all of a transcript, in order) within the limits ``o``.

    ``language`` picks the sentence and clause words; ``speech`` (sorted speech regions,
    seconds) snaps cue starts onto speech and stops a cue lingering on a word whose
    timestamp runs on into silence.
    """
    ws = clean_words(words, language)
    for w in ws:
        w.end = clamp_end(w.start, w.end, speech)
    spans: list[tuple[int, int]] = []
    for a, b in split_runs(ws, o.max_pause):
        spans += [(a + i, a + j) for i, j in split_run(ws[a:b], o, language)]
    cues = []
    for (i, j), (start, end) in zip(spans, _timed(ws, spans, o, speech), strict=True):
        lines = layout(_tokens(ws[i:j]), o.box, language)
        timed = tuple((w.text, w.start, w.end) for w in ws[i:j])
        cues.append(Cue(round(start, 3), round(end, 3), lines, timed))
    return cues
