"""Checks before a file is decoded: is it within ``jobs.max_duration``, and would its audio
fit in the memory this machine has left?

Whisper holds the whole file decoded (float32, 16 kHz: 64 kB per second) and its log-mel
spectrogram (80 or 128 bands, 100 frames per second, float32: up to 51 kB per second) at
once, about 0.42 GB per hour of audio on top of the model. A six-hour recording needs
2.5 GB; a forgotten 40-hour stream would take the service down (the kernel's OOM killer),
restart it and do so again. Both limits are clear errors instead: a file too long for
``max_duration`` fails (permanent); one that does not fit the memory available now is
retried later (transient), since memory is freed when other work ends.
"""

from __future__ import annotations

from pathlib import Path

from daemon.config import JobsSettings
from daemon.errors import ResourceError, WhisperdError
from daemon.media import SAMPLE_RATE, probe

BYTES_PER_AUDIO_SECOND = SAMPLE_RATE * 4 + 128 * 100 * 4  # samples + the widest mel
MEMINFO = Path("/proc/meminfo")


class TooLongError(ResourceError):
    """The audio is longer than ``jobs.max_duration``."""


class NotEnoughMemoryError(ResourceError):
    """Decoding the file would need more memory than is available now."""

    transient = True


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None where it cannot be read."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check(source: Path, jobs: JobsSettings, *, seconds: float | None = None) -> float | None:
    """Raise when ``source`` is over the limits; its declared duration when known.

    ``seconds``: the duration when it is already known (after decoding); otherwise the
    container's declared duration is used, and a file that declares none passes here (the
    decoder's own length is checked by the caller after decoding).
    """
    if seconds is None:
        try:
            seconds = probe(source).duration
        except WhisperdError:
            return None  # decode reports what is wrong with the file, with its own message
    if seconds is None:
        return None
    if jobs.max_duration is not None and seconds > jobs.max_duration:
        raise TooLongError(
            f"{source.name}: {_hours(seconds)} of audio is longer than jobs.max_duration "
            f"({_hours(jobs.max_duration)})",
            hint="split the recording, or raise jobs.max_duration",
        )
    needed = int(seconds * BYTES_PER_AUDIO_SECOND)
    available = available_memory()
    if jobs.memory_check and available is not None and needed > available:
        raise NotEnoughMemoryError(
            f"{source.name}: {_hours(seconds)} of audio needs about {needed / 2**30:.1f} GB of "
            f"memory to transcribe, {available / 2**30:.1f} GB are available",
            hint="retried later; free memory, or split the recording",
        )
    return seconds


def _hours(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"
