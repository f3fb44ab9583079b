"""Transcribing only the speech: the clip plan both engines follow, and the loop that runs it.

Given the speech regions of a file (from :mod:`daemon.media.vad`, seconds), :func:`plan`
groups them into *stretches*: regions whose pauses are at most :data:`JOIN_GAP` seconds
belong to one continuous stretch, and a longer silence (music, noise, nothing) starts a new
one. A stretch is one clip, which Whisper windows itself as it does a whole file: on the
lecture of the subtitle tests, cutting stretches into clips of one 30 s window each, at
their longest pauses, cost 0.6 to 1.2 WER points against raw openai-whisper (the window
edges change the context of every window). Only faster-whisper's batched pipeline, whose
clips must each fit a window, gets them cut that way (``max_clip``).

:func:`transcribe` calls the engine once per stretch, on that stretch's audio, with its
clips as ``clip_timestamps`` (relative to the stretch), and shifts the segments back to the
file's timeline. One call per stretch, not one for the file: with
``condition_on_previous_text`` the text of one stretch would prompt the next one across a
long silence, and a prompt from an unrelated clip made every temperature fallback fail on
the next clip in the prototype. Long silences are never decoded.

Whisper sometimes ends a window early and resumes after a sentence, which is then lost (an
11-word sentence of that lecture, with either engine). VAD knows someone spoke there: a
speech region that came back without words (:func:`missed`) is decoded once more, on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from daemon.engines.base import ProgressCallback
from daemon.transcript import Region, Segment

RATE = 16000
JOIN_GAP = 2.0  # seconds: regions closer than this form one continuous stretch
WINDOW = 30.0  # seconds: one Whisper window (the longest clip of the batched pipeline)
TAIL = 0.5  # seconds of audio kept after a stretch's last clip (mel context, never decoded)
MISSED_SPEECH = 1.0  # seconds: a speech region at least this long that came back without
MISSED_COVER = 0.25  # words (less than this share of it covered) is decoded again on its own

#: One engine call: (audio of a stretch, flat clip times relative to it or None for all of
#: it, progress within this call) → segments with times relative to that audio.
Call = Callable[[np.ndarray, list[float] | None, ProgressCallback], list[Segment]]


@dataclass(frozen=True)
class Stretch:
    """A continuous stretch of speech: one engine call."""

    start: float  # seconds into the file where its audio starts
    end: float  # seconds into the file where its audio ends (the last clip + TAIL)
    clips: tuple[Region, ...]  # clip (start, end) in seconds of the file
    regions: tuple[Region, ...] = ()  # the speech regions it holds, seconds of the file

    @property
    def speech(self) -> float:
        return sum(e - s for s, e in self.clips)


def last_frame(duration: float) -> float:
    """The latest time a clip may end: the start of the last whole 10 ms mel frame.

    openai-whisper loops forever on a clip ending past its last frame (the window cut there
    is empty and ``seek`` never advances); faster-whisper clamps such an end itself.
    """
    return max(0.0, (math.floor(duration * 100 + 1e-6) - 1) / 100)


def plan(
    regions: Sequence[Region], duration: float, max_clip: float | None = None
) -> list[Stretch]:
    """The stretches (engine calls) and their clips for the speech ``regions``: one clip per
    stretch, or clips of at most ``max_clip`` seconds cut at its longest pauses."""
    last = last_frame(duration)
    kept = [(max(0.0, s), min(last, e)) for s, e in sorted(regions) if min(last, e) > s]
    groups: list[list[Region]] = []
    for region in kept:
        if groups and region[0] - groups[-1][-1][1] <= JOIN_GAP:
            groups[-1].append(region)
        else:
            groups.append([region])
    stretches = []
    for group in groups:
        cut = _split(group, max_clip) if max_clip else [(group[0][0], group[-1][1])]
        clips = tuple((round(s, 3), round(e, 3)) for s, e in cut)
        end = min(duration, clips[-1][1] + TAIL)
        stretches.append(Stretch(clips[0][0], end, clips, tuple(group)))
    return stretches


def _split(group: Sequence[Region], max_clip: float) -> list[Region]:
    """``group`` as clips no longer than ``max_clip``, cut at the longest pauses first.

    A single region longer than that stays whole (:mod:`daemon.media.vad` keeps regions
    within ``vad.max_speech_s``).
    """
    if len(group) == 1 or group[-1][1] - group[0][0] <= max_clip:
        return [(group[0][0], group[-1][1])]
    gaps = [group[k + 1][0] - group[k][1] for k in range(len(group) - 1)]
    cut = max(range(len(gaps)), key=lambda k: gaps[k]) + 1
    return _split(group[:cut], max_clip) + _split(group[cut:], max_clip)


def shift(segment: Segment, offset: float) -> Segment:
    """``segment`` (and its words) moved ``offset`` seconds later."""
    words = segment.words
    if words is not None:
        words = tuple(replace(w, start=w.start + offset, end=w.end + offset) for w in words)
    return replace(segment, start=segment.start + offset, end=segment.end + offset, words=words)


def transcribe(
    samples: np.ndarray,
    regions: Sequence[Region] | None,
    call: Call,
    progress: ProgressCallback | None = None,
) -> list[Segment]:
    """Every stretch of ``regions`` through ``call``; all of ``samples`` when ``None``.

    Segments come back on the file's timeline, numbered from 0. No regions: no call.
    """
    report = progress or (lambda fraction: None)
    if regions is None:
        found = call(samples, None, report)
        return [replace(s, id=k) for k, s in enumerate(found)]
    stretches = plan(regions, len(samples) / RATE)
    total = sum(s.speech for s in stretches) or 1.0
    done = 0.0
    segments: list[Segment] = []
    for stretch in stretches:
        audio = samples[round(stretch.start * RATE) : round(stretch.end * RATE)]
        limit = last_frame(len(audio) / RATE)
        clips = [min(round(t - stretch.start, 3), limit) for c in stretch.clips for t in c]
        base, share = done / total, stretch.speech / total

        def within(fraction: float, base: float = base, share: float = share) -> None:
            report(base + share * min(1.0, fraction))

        found = [shift(s, stretch.start) for s in call(audio, clips, within)]
        again = missed(stretch.regions, found)
        if again:  # speech Whisper skipped (it ended a window early): each region on its own
            flat = [min(round(t - stretch.start, 3), limit) for c in again for t in c]
            found += [shift(s, stretch.start) for s in call(audio, flat, lambda fraction: None)]
            found.sort(key=lambda s: (s.start, s.end))
        segments += found
        done += stretch.speech
        report(done / total)
    return [replace(s, id=k) for k, s in enumerate(segments)]


def missed(regions: Sequence[Region], segments: Sequence[Segment]) -> list[Region]:
    """The speech ``regions`` the ``segments`` left out: at least :data:`MISSED_SPEECH` long
    and less than :data:`MISSED_COVER` of them under a word (a segment, without word times).

    Within one 30 s clip Whisper may end its window early and resume after a sentence, which
    is then lost; VAD knows someone spoke there, so that region is decoded once more.
    """
    spans = sorted(
        (w.start, w.end) for s in segments for w in (s.words or ()) if w.end > w.start
    ) or sorted((s.start, s.end) for s in segments if s.end > s.start)
    found = []
    for start, end in regions:
        if end - start < MISSED_SPEECH:
            continue
        covered = sum(max(0.0, min(end, e) - max(start, s)) for s, e in spans)
        if covered < MISSED_COVER * (end - start):
            found.append((start, end))
    return found


def speech_audio(samples: np.ndarray, regions: Sequence[Region], seconds: float) -> np.ndarray:
    """The first ``seconds`` of speech in ``samples``, regions joined (language detection)."""
    parts, have = [], 0
    want = round(seconds * RATE)
    for start, end in regions:
        part = samples[round(start * RATE) : round(end * RATE)][: want - have]
        parts.append(part)
        have += len(part)
        if have >= want:
            break
    return np.concatenate(parts) if parts else samples[:0]
