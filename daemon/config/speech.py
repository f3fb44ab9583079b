"""The settings of the subtitle path: speech detection, the hallucination guard, the cues.

Three sections of the job settings, each a frozen model that a folder rule may set key by
key (:func:`daemon.config.rules.merge`): ``vad`` (Silero speech detection before the engine),
``guard`` (what is dropped after it, and why) and ``subtitles`` (how srt and vtt cues are
cut: ``style: readable`` by the timed-text rules, ``style: whisper`` as Whisper writes them).
"""

from __future__ import annotations

from pydantic import Field

from daemon.config.values import (
    Flag,
    Fraction,
    Milliseconds,
    OptionalCount,
    OptionalFraction,
    OptionalNumber,
    OptionalPositive,
    OptionalRepeat,
    Positive,
    Seconds,
    Section,
    SubtitleStyle,
)


class VadSettings(Section):
    """Speech detection (Silero VAD) before the engine: only speech is transcribed."""

    enabled: Flag = Field(
        True,
        description="Detect speech first and transcribe only the speech (both engines); a "
        "file without speech gets empty outputs.",
    )
    threshold: Fraction = Field(
        0.5, description="Speech probability above which a 32 ms frame counts as speech."
    )
    neg_threshold: OptionalFraction = Field(
        None, description="Probability below which speech ends; null: threshold - 0.15."
    )
    min_silence_ms: Milliseconds = Field(
        300, description="A pause shorter than this (ms) does not end a speech region."
    )
    speech_pad_ms: Milliseconds = Field(
        200,
        description="Padding (ms) on each side of a region, so that no word is clipped "
        "(never past the middle of a pause).",
    )
    min_speech_ms: Milliseconds = Field(
        250, description="Regions shorter than this (ms) are dropped (clicks, breaths)."
    )
    max_speech_s: Positive = Field(
        20.0,
        description="Regions longer than this (s) are split at their longest inner pause, so "
        "that the clips fit Whisper's 30 s window.",
    )


class GuardSettings(Section):
    """The hallucination guard: what is dropped after the engine (recorded in the json)."""

    enabled: Flag = Field(True, description="Apply the rules below; false keeps every segment.")
    no_speech_prob: OptionalFraction = Field(
        0.6,
        description="Drop a segment whose no-speech probability is above this and whose "
        "average log probability is below avg_logprob; null: rule off.",
    )
    avg_logprob: OptionalNumber = Field(
        -1.0, description="The log-probability half of that rule; null: no_speech_prob alone."
    )
    outside_speech: Flag = Field(
        True,
        description="Drop segments and words that lie outside the detected speech (needs "
        "vad.enabled).",
    )
    speech_margin: Seconds = Field(
        0.2, description="Seconds a word may lie outside a speech region and still count in it."
    )
    repeat_limit: OptionalRepeat = Field(
        3,
        description="The same text this many times in a row keeps only the first; null: off.",
    )
    loop_limit: OptionalRepeat = Field(
        4,
        description="A phrase repeated this many times in a row inside one segment is cut "
        "back to one; null: off.",
    )
    annotations: Flag = Field(
        True, description="Drop segments that are only a sound annotation ([MUSIC], ♪)."
    )
    stock_phrases: Flag = Field(
        True,
        description="Drop stock phrases ('Thanks for watching!') when their words lie mostly "
        "outside speech (a small list per language, en and es).",
    )
    hallucination_silence_threshold: OptionalPositive = Field(
        None,
        description="Seconds of silence around a suspect segment after which the engine "
        "skips it (both engines; turns word timestamps on); null: off.",
    )


class SubtitleSettings(Section):
    """How srt and vtt cues are cut: readable (timed-text rules) or whisper (its segments)."""

    style: SubtitleStyle = Field(
        "readable",
        description="readable: cues built from word timings by the timed-text rules below; "
        "whisper: Whisper's own segments, wrapped by its options.",
    )
    max_line_width: OptionalCount = Field(
        None,
        description="Characters per line; null: readable 42 (16 Chinese, Japanese, Korean; "
        "35 Thai), whisper no limit.",
    )
    max_line_count: OptionalCount = Field(
        None, description="Lines per cue; null: readable 2, whisper no limit (needs a width)."
    )
    max_words_per_line: OptionalCount = Field(
        None, description="Words per line (whisper: per cue, not with a width); null: no limit."
    )
    highlight_words: Flag = Field(
        False, description="Underline each word in srt/vtt as it is spoken."
    )
    max_cps: OptionalPositive = Field(
        None,
        description="readable: reading speed, characters per second; null: 20 (Chinese 9, "
        "Japanese 4, Korean 12, Thai 15).",
    )
    max_pause: Positive = Field(
        1.5, description="readable: a cue never spans a pause longer than this (seconds)."
    )
    min_duration: Positive = Field(
        0.833, description="readable: seconds a cue stays on screen at least (5/6 s)."
    )
    max_duration: Positive = Field(
        7.0, description="readable: seconds a cue stays on screen at most."
    )
    min_gap: Seconds = Field(
        0.083, description="readable: seconds between two cues at least (2 frames)."
    )
