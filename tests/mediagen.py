"""Real media of every kind the completeness checks judge, and ways to cut or edit it.

Files are written by the ``ffmpeg`` binary (``scripts/setup`` installs it), which can write
to a pipe (so sizes are never filled in, as a streaming writer leaves them) and set muxer
flags per output; AMR-NB comes from PyAV's libopencore encoder. Each codec is encoded once
and copied into the other containers that carry it (``Kind.source``), which keeps a full
library to a few seconds::

    library = Library.shared(tmp_path_factory)   # one per test session, built on first use
    path = library.path("mp4-faststart")          # a complete 20 s file of that kind
    cut_copy(path, tmp_path / "cut.mp4", 4096)    # the first 4096 bytes, as a copy cut off

Every kind says whether a complete file of it is judged *conclusively* (its structure
declares where it ends) or only by framing (a cut exactly at a frame boundary looks the
same). :func:`frame_boundaries` gives those boundaries independently of the code under
test: from PyAV's demuxer (packet positions), or the packet size for MPEG-TS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest

SECONDS = 20  # long enough that half of most compressed files is more than 64 KiB
NOISE = "anoisesrc=d={seconds}:c=pink:a=0.3:r=44100:seed=7"  # the same bytes on every run


@dataclass(frozen=True)
class Kind:
    """One kind of test file: how to make it and the verdict a complete one gets."""

    name: str
    suffix: str
    args: str  # ffmpeg output options, space-separated
    fmt: str  # the Verdict.format expected
    conclusive: bool  # is a complete file judged conclusively?
    pipe: bool = False  # written to a pipe (not seekable: sizes never filled in)
    source: str | None = None  # the kind whose stream is copied (None: encode pink noise)


MP3_CBR = "-c:a libmp3lame -b:a 128k -write_xing 0"
FRAG = "-movflags frag_keyframe+empty_moov+default_base_moof -frag_duration 500000"
COPY = "-c:a copy"
ID3V1 = f"{COPY} -write_xing 0 -write_id3v1 1 -metadata title=t"
_K = Kind  # short rows below: name, suffix, options, format, conclusive, piped, source

KINDS: tuple[Kind, ...] = (
    _K("wav", ".wav", "-c:a pcm_s16le", "wav", True),
    _K("wav-24bit", ".wav", "-c:a pcm_s24le", "wav", True),
    _K("rf64", ".wav", "-c:a pcm_s16le -rf64 always", "rf64", True),
    _K("aiff", ".aiff", "-c:a pcm_s16be -f aiff", "aiff", True),
    _K("aifc", ".aifc", "-c:a pcm_s16le -f aiff", "aiff", True),
    _K("m4a", ".m4a", "-c:a aac -b:a 96k", "m4a", True),
    _K("mp4-moov-at-end", ".mp4", COPY, "mp4", True, source="m4a"),
    _K("mp4-faststart", ".mp4", f"{COPY} -movflags +faststart", "mp4", True, source="m4a"),
    _K("mov", ".mov", COPY, "mov", True, source="m4a"),
    _K("3gp", ".3gp", "-c:a aac -ar 16000 -ac 1 -b:a 32k", "3gp", True),
    _K("fmp4-mfra", ".mp4", f"{COPY} {FRAG}", "mp4", True, source="m4a"),
    # the same with its mfra index cut off, as a live fragmented file is while written
    _K("fmp4-no-mfra", ".mp4", f"{COPY} {FRAG}", "mp4", False, source="m4a"),
    _K("mkv", ".mkv", COPY, "matroska", True, source="m4a"),
    _K("ogg-opus", ".opus", "-c:a libopus -b:a 64k -f ogg", "ogg", True),
    _K("webm", ".webm", COPY, "webm", True, source="ogg-opus"),
    _K("mkv-live", ".mkv", f"{COPY} -live 1 -f matroska", "matroska", False, True, "ogg-opus"),
    _K("mp3-cbr-noxing", ".mp3", MP3_CBR, "mp3", False),
    _K("mp3-xing", ".mp3", COPY, "mp3", True, source="mp3-cbr-noxing"),
    _K("mp3-vbr", ".mp3", "-c:a libmp3lame -q:a 4", "mp3", True),
    _K("mp3-id3v1", ".mp3", ID3V1, "mp3", False, source="mp3-cbr-noxing"),
    _K("adts", ".aac", f"{COPY} -f adts", "adts", False, source="m4a"),
    _K("mpegts", ".ts", f"{COPY} -f mpegts", "mpegts", False, source="m4a"),
    _K("m2ts", ".m2ts", f"{COPY} -f mpegts -mpegts_m2ts_mode 1", "mpegts", False, source="m4a"),
    _K("ogg-vorbis", ".ogg", "-c:a libvorbis -q:a 3", "ogg", True),
    _K("flac", ".flac", "-c:a flac", "flac", True),
    # encoded, not copied: a copy would carry the source's STREAMINFO with its sample count
    _K("flac-streamed", ".flac", "-c:a flac -f flac", "flac", False, True),
    _K("amr-nb", ".amr", "", "amr", False),
)
BY_NAME = {k.name: k for k in KINDS}


class Library:
    """One complete file of every kind, each built the first time a test asks for it."""

    _shared: ClassVar[dict[Path, Library]] = {}

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def shared(cls, factory: pytest.TempPathFactory) -> Library:
        """The library of this test session (every test module shares it)."""
        base = factory.getbasetemp()
        if base not in cls._shared:
            cls._shared[base] = cls(factory.mktemp("media"))
        return cls._shared[base]

    def path(self, name: str) -> Path:
        """The complete file of kind ``name``; do not modify it (copy it first)."""
        kind = BY_NAME[name]
        path = self.root / f"{kind.name}{kind.suffix}"
        if not path.exists():
            source = self.path(kind.source) if kind.source else None
            make(kind, path.with_name(f"new-{path.name}"), source).rename(path)
        return path


def make(kind: Kind, path: Path, source: Path | None = None) -> Path:
    """Write a file of ``kind`` at ``path`` (from ``source`` when the kind copies one)."""
    if kind.name == "amr-nb":
        return make_amr_nb(path)
    make_ffmpeg(path, *kind.args.split(), pipe=kind.pipe, source=source)
    if kind.name == "fmp4-no-mfra":
        drop_mfra(path)
    return path


def make_ffmpeg(
    path: Path, *args: str, seconds: float = SECONDS, pipe: bool = False, source: Path | None = None
) -> Path:
    """An ffmpeg output with the given options: from ``source``, else pink noise (stereo)."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "the ffmpeg binary is needed to build test media (scripts/setup installs it)"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    if source is None:
        cmd += ["-f", "lavfi", "-i", NOISE.format(seconds=seconds), "-ac", "2"]
    else:
        cmd += ["-i", str(source), "-map_metadata", "-1"]
    if pipe:
        with path.open("wb") as out:
            subprocess.run([*cmd, *args, "pipe:1"], stdout=out, check=True, timeout=120)
    else:
        subprocess.run([*cmd, *args, str(path)], check=True, timeout=120)
    return path


def drop_mfra(path: Path) -> None:
    """Truncate a fragmented MP4 before its mfra box (its mfro box ends with the mfra size)."""
    data = path.read_bytes()
    assert data[-12:-8] == b"mfro", "ffmpeg wrote no mfra box"
    os.truncate(path, len(data) - int.from_bytes(data[-4:], "big"))


def make_amr_nb(path: Path, seconds: float = SECONDS) -> Path:
    """AMR-NB at 12.2 kbit/s through PyAV's libopencore encoder: 8 kHz mono noise."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w", format="amr") as out:
        stream = out.add_stream("libopencore_amrnb", rate=8000)
        stream.bit_rate = 12200
        stream.layout = "mono"
        total, pts = int(seconds * 8000), 0
        while pts < total:
            chunk = (rng.uniform(-0.3, 0.3, (1, 1600)) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, pts
            pts += 1600
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def frame_boundaries(kind: Kind, path: Path) -> set[int]:
    """Offsets where one frame (packet, TS packet) ends and the next begins, plus the end."""
    size = path.stat().st_size
    if kind.fmt == "mpegts":
        step = 192 if kind.name == "m2ts" else 188
        return set(range(0, size + 1, step))
    data = path.read_bytes()
    if kind.name == "mkv-live":  # clusters have known sizes: only a cluster boundary is whole
        return set(find_all(data, bytes.fromhex("1f43b675"))) | {size}
    if kind.name == "fmp4-no-mfra":  # a whole fragment ends where the next moof begins
        return {i - 4 for i in find_all(data, b"moof")} | {size}
    return packet_positions(path) | {size}


def packet_positions(path: Path) -> set[int]:
    """File offsets of the audio packets, as PyAV's demuxer reports them."""
    found = set()
    with av.open(str(path)) as container:
        for packet in container.demux(audio=0):
            if packet.pos is not None and packet.pos >= 0:
                found.add(packet.pos)
    return found


def simple_block_starts(path: Path) -> set[int]:
    """Where each Matroska SimpleBlock element starts (PyAV gives where its payload starts)."""
    data, starts = path.read_bytes(), set()
    for pos in packet_positions(path):
        for at in range(max(0, pos - 9), pos - 1):  # 1-byte ID 0xA3, then a 1–8 byte size
            if data[at] == 0xA3 and at + 1 + (9 - data[at + 1].bit_length()) == pos:
                starts.add(at)
    return starts


def find_all(data: bytes, needle: bytes) -> list[int]:
    """Every offset of ``needle`` in ``data``."""
    found, pos = [], data.find(needle)
    while pos != -1:
        found.append(pos)
        pos = data.find(needle, pos + 1)
    return found


def cut_points(size: int, steps: int = 33) -> list[int]:
    """Where the tests cut a file: every 1/``steps`` of it, two header sizes, one byte short."""
    points = {round(size * k / steps) for k in range(1, steps)} | {512, 4096, size - 1}
    return sorted(p for p in points if 0 < p < size)


def cut_copy(src: Path, dst: Path, length: int) -> Path:
    """Copy the first ``length`` bytes of ``src`` to ``dst``."""
    with src.open("rb") as f:
        dst.write_bytes(f.read(length))
    return dst


def preallocated_copy(src: Path, dst: Path, written: int) -> Path:
    """``dst`` at the full size of ``src`` (sparse), with only the first ``written`` bytes."""
    with src.open("rb") as f, dst.open("wb") as out:
        out.truncate(src.stat().st_size)
        out.write(f.read(written))
    return dst


def _vint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """(value without marker, length) of the EBML vint at ``data[pos]``."""
    length = 9 - data[pos].bit_length()
    value = int.from_bytes(data[pos : pos + length], "big") & ((1 << (7 * length)) - 1)
    return value, length


def unknown_size_clusters(src: Path, dst: Path) -> Path:
    """A copy of a live Matroska file whose Clusters all say "unknown size" (as browsers'
    MediaRecorder writes WebM): each Cluster size field is set to all ones, same length."""
    data = bytearray(src.read_bytes())
    pos = 4 + sum(_vint(data, 4))  # past the EBML header
    pos += 4 + _vint(data, pos + 4)[1]  # into the Segment (unknown size, from -live 1)
    while pos < len(data):
        id_len = 9 - data[pos].bit_length()
        size, size_len = _vint(data, pos + id_len)
        if data[pos : pos + 4] == bytes.fromhex("1f43b675"):
            start = pos + id_len
            data[start : start + size_len] = bytes([0xFF >> (size_len - 1)]) + b"\xff" * (
                size_len - 1
            )
        pos += id_len + size_len + size
    dst.write_bytes(bytes(data))
    return dst
