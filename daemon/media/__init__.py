"""Media: what a file holds and its audio as Whisper needs it.

Owns everything that reads the bytes of a source: :mod:`.probe` (headers, streams, declared
durations, how opening fails), :mod:`.decode` (PyAV to 16 kHz mono float32, truncation
and damage checks, where the track sits on the playback clock), :mod:`.streams` (audio
tracks and subtitle streams with their languages, the track to transcribe), :mod:`.vad`
(where the audio holds speech: Silero VAD) and :mod:`.completeness` (is a container whole,
from its own structure, with bounded reads: used by intake before a file is queued).

May import: :mod:`daemon.errors` (and :mod:`daemon.config`); nothing else of whisperd.
"""

from daemon.media.decode import SAMPLE_RATE, Audio, decode
from daemon.media.probe import AudioStreamInfo, MediaInfo, probe
from daemon.media.vad import Region, detect_speech, speech_seconds

__all__ = [
    "SAMPLE_RATE",
    "Audio",
    "AudioStreamInfo",
    "MediaInfo",
    "Region",
    "decode",
    "detect_speech",
    "probe",
    "speech_seconds",
]
