"""Test programmes: real speech clips laid out between kinds of non-speech, with ground truth.

A :class:`Programme` is 16 kHz mono float32 audio plus the intervals where speech really is
(measured on each clean clip before mixing, by frame energy, independent of Silero) and the
reference text. Programmes are built in memory from the shared clips (no audio is committed);
:func:`write_wav` writes one where the caller says (a temporary folder). Used by the tests and
by the bench's ``subtitles`` part.

Non-speech kinds: digital silence, low white noise (-60 dBFS), louder pink noise
(-30..-35 dBFS RMS) and synthetic music (chords, a beat, a melody).
"""

from __future__ import annotations

import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from tests import speech
from tests.speech import Clip

RATE = 16000


@dataclass(frozen=True)
class Programme:
    name: str
    samples: np.ndarray  # 16 kHz mono float32
    speech: tuple[tuple[float, float], ...]  # ground-truth speech intervals (s)
    reference: str  # reference text of all clips in order ("" when no speech)

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE


def english() -> list[Clip]:
    """The English shared clips, in manifest order."""
    return speech.clips("en")


@cache
def _decoded(path: Path) -> np.ndarray:
    from daemon.media import decode

    return decode(path).samples


def load_audio(path: Path) -> np.ndarray:
    """A clip as 16 kHz mono float32 (whisperd's own decoder; remembered per path)."""
    return _decoded(path).copy()


def energy_speech(
    samples: np.ndarray, *, floor_db: float = -35.0, hang: float = 0.3
) -> list[tuple[float, float]]:
    """Speech intervals of a CLEAN clip: 20 ms frames within ``floor_db`` of the loudest frame.

    Gaps shorter than ``hang`` seconds are bridged; this is the ground truth of a programme.
    """
    frame = RATE // 50
    n = len(samples) // frame
    if n == 0:
        return []
    rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms / rms.max())
    active = np.flatnonzero(db > floor_db)
    out: list[list[float]] = []
    for i in active:
        s, e = i * frame / RATE, (i + 1) * frame / RATE
        if out and s - out[-1][1] <= hang:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [(float(s), float(e)) for s, e in out if e - s >= 0.06]


# --- non-speech generators ---------------------------------------------------------------


def dbfs(level_db: float) -> float:
    """RMS amplitude of a full-scale-relative level."""
    return float(10 ** (level_db / 20))


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.float32)


def white_noise(seconds: float, level_db: float = -60.0, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(round(seconds * RATE))
    return (x * dbfs(level_db)).astype(np.float32)


def pink_noise(seconds: float, level_db: float = -32.0, seed: int = 2) -> np.ndarray:
    """1/f noise (white noise shaped in the frequency domain) at ``level_db`` RMS."""
    n = round(seconds * RATE)
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    x *= dbfs(level_db) / (np.sqrt(np.mean(x**2)) + 1e-12)
    return x.astype(np.float32)


def _tone(freq: float, n: int, harmonics: int = 3) -> np.ndarray:
    t = np.arange(n) / RATE
    return sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1))


def music(seconds: float, level_db: float = -20.0, seed: int = 3, bpm: float = 110.0) -> np.ndarray:
    """Synthetic music: a I-V-vi-IV chord loop, a kick/hat beat and a random melody."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    out = np.zeros(n)
    beat = round(60 / bpm * RATE)
    chords = [
        (261.6, 329.6, 392.0),
        (196.0, 246.9, 293.7),
        (220.0, 261.6, 329.6),
        (174.6, 220.0, 261.6),
    ]
    bar = beat * 4
    for k, start in enumerate(range(0, n, bar)):
        m = min(bar, n - start)
        env = np.minimum(1, np.arange(m) / 800) * np.exp(-np.arange(m) / (bar * 1.5))
        out[start : start + m] += 0.25 * env * sum(_tone(f, m) for f in chords[k % 4])
    kick_len = beat // 3
    kt = np.arange(kick_len) / RATE
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-kt * 30)) * kt) * np.exp(-kt * 18)
    hat = rng.standard_normal(beat // 8) * np.exp(-np.arange(beat // 8) / 150)
    hat = np.diff(hat, prepend=0)  # crude high-pass
    scale = [523.3, 587.3, 659.3, 784.0, 880.0, 1046.5]
    for i, start in enumerate(range(0, n, beat // 2)):
        if i % 2 == 0 and start + kick_len <= n:
            out[start : start + kick_len] += 0.9 * kick
        if start + len(hat) <= n:
            out[start : start + len(hat)] += 0.15 * hat
        m = min(beat // 2, n - start)
        note_env = np.exp(-np.arange(m) / (beat / 3))
        out[start : start + m] += 0.3 * note_env * _tone(scale[rng.integers(len(scale))], m, 4)
    out *= dbfs(level_db) / (np.sqrt(np.mean(out**2)) + 1e-12)
    return np.clip(out, -1, 1).astype(np.float32)


NON_SPEECH: dict[str, Callable[[float], np.ndarray]] = {
    "silence": silence,
    "low_noise": lambda s: white_noise(s, -60.0),
    "pink_noise": lambda s: pink_noise(s, -32.0),
    "music": lambda s: music(s, -20.0),
}


# --- programmes --------------------------------------------------------------------------


def assemble(name: str, parts: Sequence[tuple[str, object]]) -> Programme:
    """Concatenate parts: ``("gap", array)`` non-speech, ``("clip", Clip)`` speech.

    A clip's own ground truth comes from :func:`energy_speech` on the clean clip.
    """
    chunks: list[np.ndarray] = []
    truth: list[tuple[float, float]] = []
    refs: list[str] = []
    t = 0.0
    for kind, item in parts:
        if kind == "clip":
            assert isinstance(item, Clip)
            audio = load_audio(item.path)
            peak = float(np.max(np.abs(audio))) or 1.0
            audio = audio * min(1.0, 0.7 / peak)  # room for a noise bed, no clipping
            truth += [(round(t + s, 3), round(t + e, 3)) for s, e in energy_speech(audio)]
            refs.append(item.reference)
        else:
            audio = np.asarray(item, np.float32)
        chunks.append(audio.astype(np.float32))
        t += len(audio) / RATE
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Programme(name, samples, tuple(truth), " ".join(refs))


def nonspeech_programme(kind: str, seconds: float = 60.0) -> Programme:
    """``seconds`` of one non-speech kind alone (no ground-truth speech, empty reference)."""
    return assemble(f"{kind}_only", [("gap", NON_SPEECH[kind](seconds))])


def mixed_programme(clips: Sequence[Clip] | None = None, gap: float = 6.0) -> Programme:
    """A music intro, then clips separated by each non-speech kind in turn, music outro."""
    clips = list(clips if clips is not None else english()[:12])
    kinds = ["silence", "pink_noise", "music", "low_noise"]
    parts: list[tuple[str, object]] = [("gap", music(8.0, seed=11))]
    for i, clip in enumerate(clips):
        parts.append(("clip", clip))
        kind = kinds[i % len(kinds)]
        parts.append(("gap", NON_SPEECH[kind](gap) if kind != "music" else music(gap, seed=i)))
    parts.append(("gap", music(6.0, seed=99)))
    return assemble("mixed", parts)


def lecture_programme(clips: Sequence[Clip] | None = None, pause: float = 0.5) -> Programme:
    """Many English clips back to back with short pauses of low noise (a continuous talk)."""
    clips = list(clips if clips is not None else english())
    parts: list[tuple[str, object]] = []
    for i, clip in enumerate(clips):
        parts.append(("clip", clip))
        parts.append(("gap", white_noise(pause, -60.0, seed=100 + i)))
    return assemble("lecture", parts)


def sparse_programme(clips: Sequence[Clip] | None = None, gap: float = 60.0) -> Programme:
    """A long programme that is mostly silence and low noise: ``gap`` seconds between clips."""
    clips = list(clips if clips is not None else english()[:6])
    parts: list[tuple[str, object]] = [("gap", white_noise(gap / 2, -60.0, seed=7))]
    for i, clip in enumerate(clips):
        parts.append(("clip", clip))
        parts.append(("gap", silence(gap) if i % 2 else white_noise(gap, -60.0, seed=8 + i)))
    return assemble("sparse", parts)


def short_programmes() -> dict[str, Programme]:
    """The same kinds of material in about 8 minutes (the real-model tests' set): *mixed*
    with 6 clips and 4 s gaps, *lecture* of the first 13 clips (about 250 words), *sparse*
    with 3 clips a minute apart, and 60 s of each non-speech kind alone."""
    clips = english()
    made = {
        "mixed": mixed_programme(clips[:6], gap=4.0),
        "lecture": lecture_programme(clips[:13]),
        "sparse": sparse_programme(clips[:3]),
    }
    return made | {f"{kind}_only": nonspeech_programme(kind) for kind in NON_SPEECH}


def write_wav(programme: Programme, path: Path) -> Path:
    """Write the programme as 16-bit PCM WAV (for listening or for the CLI)."""
    pcm = (np.clip(programme.samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(RATE)
        fh.writeframes(pcm.tobytes())
    return path


# --- checks on a written srt (independent of whisperd's own rule report) ----------------

Interval = tuple[float, float]
_TOLERANCE = 0.002  # srt times are whole milliseconds


def srt_cues(srt_text: str) -> list[tuple[float, float, list[str]]]:
    """(start, end, lines) of every cue of an srt."""
    import srt

    return [(c.start.total_seconds(), c.end.total_seconds(), c.content.splitlines())
            for c in srt.parse(srt_text)]  # fmt: skip


def _overlaps(span: Interval, truth: Sequence[Interval]) -> list[Interval]:
    return [t for t in truth if span[0] < t[1] and span[1] > t[0]]


def speech_checks(srt_text: str, truth: Sequence[Interval]) -> dict[str, object]:
    """Words in cues that overlap no true speech; how early cues start before their speech."""
    cues = srt_cues(srt_text)
    stray = [" ".join(lines) for s, e, lines in cues if not _overlaps((s, e), truth)]
    leads = []
    for start, end, _ in cues:
        hits = _overlaps((start, end), truth)
        if hits and not any(s <= start <= e for s, e in hits):
            leads.append(hits[0][0] - start)
    return {
        "cues": len(cues),
        "words_away_from_speech": sum(len(text.split()) for text in stray),
        "examples": stray[:3],
        "max_lead_seconds": round(max(leads, default=0.0), 3),
    }


def rule_checks(
    srt_text: str,
    *,
    lines: int = 2,
    width: int = 42,
    cps: float = 20.0,
    min_duration: float = 0.833,
    max_duration: float = 7.0,
    min_gap: float = 0.083,
) -> dict[str, object]:
    """Share of an srt's cues within every timed-text rule (the shipped limits, English).

    A line over ``width`` passes when it is a single word (words are never broken).
    """
    cues = srt_cues(srt_text)
    outside = []
    for k, (start, end, text) in enumerate(cues):
        duration = end - start
        gap = cues[k + 1][0] - end if k + 1 < len(cues) else min_gap
        broken = [name for name, ok in (
            ("line_count", len(text) <= lines),
            ("line_width", all(len(t) <= width or " " not in t for t in text)),
            ("reading_speed", len(" ".join(text)) <= cps * (duration + _TOLERANCE)),
            ("min_duration", duration >= min_duration - _TOLERANCE),
            ("max_duration", duration <= max_duration + _TOLERANCE),
            ("min_gap", gap >= min_gap - _TOLERANCE),
        ) if not ok]  # fmt: skip
        if broken:
            outside.append({"start": start, "text": " / ".join(text), "rules": broken})
    share = 1 - len(outside) / len(cues) if cues else 1.0
    return {"cues": len(cues), "within_all": round(share, 4), "outside": outside[:5]}
