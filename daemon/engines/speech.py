"""Transcribing only the speech: the clip plan both engines follow, and the loop that runs it.

Given the speech regions of a file (from :mod:`daemon.media.vad`, seconds), :func:`plan`
groups them into *stretches*: regions whose pauses are at most :data:`JOIN_GAP` seconds
belong to one continuous stretch, and a longer silence (music, noise, nothing) starts a new
one. Each stretch is cut into *clips* that fit one 30 s Whisper window, at its longest
pauses first, so that no window edge falls inside a phrase (tiny.en dropped or garbled the
words at such an edge in the prototype's measurements).

:func:`transcribe` calls the engine once per stretch, on that stretch's audio, with its
clips as ``clip_timestamps`` (relative to the stretch), and shifts the segments back to the
file's timeline. One call per stretch, not one for the file: with
``condition_on_previous_text`` the text of one stretch would prompt the next one across a
long silence, and a prompt from an unrelated clip made every temperature fallback fail on
the next clip in the prototype. Calls are cheap; what costs is the windows, one per clip at
least, and those are the same either way. Long silences are never decoded.
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
MAX_CLIP = 30.0  # seconds: one Whisper window
TAIL = 0.5  # seconds of audio kept after a stretch's last clip (mel context, never decoded)

#: One engine call: (audio of a stretch, flat clip times relative to it or None for all of
#: it, progress within this call) → segments with times relative to that audio.
Call = Callable[[np.ndarray, list[float] | None, ProgressCallback], list[Segment]]


@dataclass(frozen=True)
class Stretch:
    """A continuous stretch of speech: one engine call."""

    start: float  # seconds into the file where its audio starts
    end: float  # seconds into the file where its audio ends (the last clip + TAIL)
    clips: tuple[Region, ...]  # clip (start, end) in seconds of the file

    @property
    def speech(self) -> float:
        return sum(e - s for s, e in self.clips)


def last_frame(duration: float) -> float:
    """The latest time a clip may end: the start of the last whole 10 ms mel frame.

    openai-whisper loops forever on a clip ending past its last frame (the window cut there
    is empty and ``seek`` never advances); faster-whisper clamps such an end itself.
    """
    return max(0.0, (math.floor(duration * 100 + 1e-6) - 1) / 100)


def plan(regions: Sequence[Region], duration: float) -> list[Stretch]:
    """The stretches (engine calls) and clips (windows) for the speech ``regions``."""
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
        clips = tuple((round(s, 3), round(e, 3)) for s, e in _split(group))
        end = min(duration, clips[-1][1] + TAIL)
        stretches.append(Stretch(clips[0][0], end, clips))
    return stretches


def _split(group: Sequence[Region]) -> list[Region]:
    """``group`` as clips no longer than :data:`MAX_CLIP`, cut at the longest pauses first.

    A single region longer than a window stays whole (Whisper then windows it itself).
    """
    if len(group) == 1 or group[-1][1] - group[0][0] <= MAX_CLIP:
        return [(group[0][0], group[-1][1])]
    gaps = [group[k + 1][0] - group[k][1] for k in range(len(group) - 1)]
    cut = max(range(len(gaps)), key=lambda k: gaps[k]) + 1
    return _split(group[:cut]) + _split(group[cut:])


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

        segments += [shift(s, stretch.start) for s in call(audio, clips, within)]
        done += stretch.speech
        report(done / total)
    return [replace(s, id=k) for k, s in enumerate(segments)]


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
