"""Real video files of a media library, built with the ffmpeg CLI from a real speech clip.

    media = LibraryMedia.build(folder)        # or the session fixture ``library_media``
    media.copy("two_audio_mkv", inbox / "Movies" / "Movie (2004)" / "Movie (2004).mkv")

* ``two_audio_mkv``: video from 0 s; audio 1, tagged ``jpn``, the default track, white noise
  from 0 s; audio 2, tagged ``eng``, English speech starting ``DELAY`` (2 s) after the video;
* ``delayed_mp4``: video; audio = the speech with ``-itsoffset 2`` (an MP4 edit list);
* ``subtitled_mkv``: video, a tone, an embedded English subtitle stream (srt) and a forced
  German one;
* ``forced_only_mkv``: video, the speech, only a forced English subtitle stream;
* ``plain_mkv``: video + the speech (untagged), no delay; ``plain_mp4`` the same in MP4;
* ``commentary_mkv``: an English commentary track (comment disposition, the default) and
  the English main track;
* ``video_only_mp4``: no audio at all.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

SPEECH_DIR = Path(__file__).resolve().parents[2] / "shared" / "speech"
# 1.9 s of read English ("in being comparatively modern."), speech energy from ~0.02 s.
SPEECH = SPEECH_DIR / "ljspeech" / "LJ001-0002.wav"
DELAY = 2.0  # seconds the speech track starts after the video
# AAC encoders prime 1024 samples; at the clip's 22.05 kHz that is 46 ms, which the muxer
# places before the delay and the decoder plays: tolerances cover it.
AAC_PRIMING = 1024 / 22050

VIDEO = ("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=5")
NOISE = ("-f", "lavfi", "-i", "anoisesrc=d=5:c=white:r=48000:a=0.3:seed=3")
TONE = ("-f", "lavfi", "-i", "sine=frequency=440:duration=5:sample_rate=48000")
V_A = ("-c:v", "mpeg4", "-c:a", "aac")


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg CLI quietly; fail with its stderr."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True, text=True
    )
    if done.returncode:
        raise AssertionError(f"ffmpeg {' '.join(args)}\n{done.stderr}")


def srt(path: Path, text: str) -> Path:
    path.write_text(f"1\n00:00:01,000 --> 00:00:02,500\n{text}\n\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class LibraryMedia:
    two_audio_mkv: Path
    delayed_mp4: Path
    subtitled_mkv: Path
    forced_only_mkv: Path
    plain_mkv: Path
    plain_mp4: Path
    commentary_mkv: Path
    video_only_mp4: Path

    @classmethod
    def build(cls, root: Path) -> LibraryMedia:
        """Every file, in ``root`` (a few seconds)."""
        if shutil.which("ffmpeg") is None:
            pytest.skip("the ffmpeg CLI is needed to build the test media (scripts/setup)")
        if not SPEECH.is_file():
            pytest.fail(f"the shared speech clip is missing: {SPEECH}")
        s = str(SPEECH)
        p = {f.name: root / f"{f.name}.{f.name.rsplit('_', 1)[1]}" for f in fields(cls)}
        ffmpeg(*VIDEO, *NOISE, "-itsoffset", str(DELAY), "-i", s,
               "-map", "0:v", "-map", "1:a", "-map", "2:a", *V_A,
               "-metadata:s:a:0", "language=jpn", "-metadata:s:a:1", "language=eng",
               "-disposition:a:0", "default", "-disposition:a:1", "0",
               str(p["two_audio_mkv"]))  # fmt: skip
        ffmpeg(*VIDEO, "-itsoffset", str(DELAY), "-i", s, "-map", "0:v", "-map", "1:a", *V_A,
               str(p["delayed_mp4"]))  # fmt: skip
        en, de = srt(root / "in.en.srt", "Hello."), srt(root / "in.de.srt", "Hallo.")
        ffmpeg(*VIDEO, *TONE, "-i", str(en), "-i", str(de),
               "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "3:s", *V_A, "-c:s", "srt",
               "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=ger",
               "-disposition:s:1", "forced", str(p["subtitled_mkv"]))  # fmt: skip
        ffmpeg(*VIDEO, "-i", s, "-i", str(en), "-map", "0:v", "-map", "1:a", "-map", "2:s",
               *V_A, "-c:s", "srt", "-metadata:s:s:0", "language=eng",
               "-disposition:s:0", "forced", str(p["forced_only_mkv"]))  # fmt: skip
        for name in ("plain_mkv", "plain_mp4"):
            ffmpeg(*VIDEO, "-i", s, "-map", "0:v", "-map", "1:a", *V_A, "-shortest",
                   str(p[name]))  # fmt: skip
        ffmpeg(*VIDEO, *TONE, "-i", s, "-map", "0:v", "-map", "1:a", "-map", "2:a", *V_A,
               "-metadata:s:a:0", "language=eng",
               "-metadata:s:a:0", "title=Director's Commentary",
               "-disposition:a:0", "default+comment",
               "-metadata:s:a:1", "language=eng", "-disposition:a:1", "0",
               str(p["commentary_mkv"]))  # fmt: skip
        ffmpeg(*VIDEO, "-map", "0:v", "-c:v", "mpeg4", str(p["video_only_mp4"]))
        return cls(**p)

    def copy(self, which: str, target: Path) -> Path:
        """A copy of one file at ``target`` (folders created); returns ``target``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(getattr(self, which), target)
        return target
