"""Chunk, box and element formats: streamed WAV/AIFF, trailing chunks, MP4 boxes, Matroska.

Each file is real media from ffmpeg/PyAV, edited the way a real writer or tagger leaves it.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from daemon.media import completeness
from tests import mediagen
from tests.mediagen import cut_copy


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> mediagen.Library:
    return mediagen.Library.shared(tmp_path_factory)


# --- WAV and AIFF -----------------------------------------------------------------------------


def test_streamed_wav_is_judged_by_frame_alignment(tmp_path: Path) -> None:
    """ffmpeg writing to a pipe leaves the sizes as 0xFFFFFFFF; 16-bit stereo = 4-byte frames."""
    src = mediagen.make_ffmpeg(
        tmp_path / "s.wav", "-c:a", "pcm_s16le", "-f", "wav", seconds=3, pipe=True
    )
    assert src.read_bytes()[4:8] == b"\xff\xff\xff\xff"
    whole = completeness.check(src)
    assert (whole.state, whole.format) == ("unknown", "wav"), whole.reason
    assert "stream" in whole.reason
    size = src.stat().st_size
    data_start = src.read_bytes().index(b"data") + 8
    aligned = data_start + 4 * ((size - data_start) // 8)
    assert completeness.check(cut_copy(src, tmp_path / "a.wav", aligned)).state == "unknown"
    for odd in (aligned + 1, aligned + 2, aligned + 3):
        verdict = completeness.check(cut_copy(src, tmp_path / "o.wav", odd))
        assert verdict.state == "incomplete" and "4-byte frames" in verdict.reason, verdict.reason


def test_streamed_aiff_is_never_complete(tmp_path: Path) -> None:
    """ffmpeg writing AIFF to a pipe leaves the FORM and SSND sizes at 0."""
    src = mediagen.make_ffmpeg(
        tmp_path / "s.aiff", "-c:a", "pcm_s16be", "-f", "aiff", seconds=2, pipe=True
    )
    assert src.read_bytes()[4:8] == bytes(4)
    assert completeness.check(src).state == "unknown"
    odd = completeness.check(cut_copy(src, tmp_path / "o.aiff", src.stat().st_size - 1))
    assert odd.state == "incomplete", odd.reason


def _wav(samples: bytes, channels: int, bits: int, extra_chunks: bytes = b"") -> bytes:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, 8000, 8000 * align, align, bits)
    pad = b"\0" if len(samples) % 2 else b""
    data = b"data" + struct.pack("<I", len(samples)) + samples + pad
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + data + extra_chunks
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_wav_with_a_chunk_after_the_audio(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    samples = rng.integers(-20000, 20000, 40001, dtype=np.int16).tobytes()
    info = b"INFOISFT" + struct.pack("<I", 5000) + b"x" * 5000
    wav = _wav(samples, 1, 16, b"LIST" + struct.pack("<I", len(info)) + info)
    path = tmp_path / "list.wav"
    path.write_bytes(wav)
    assert completeness.check(path).state == "complete"
    data_end = wav.index(b"LIST")
    for cut in (data_end, data_end + 4, data_end + 100, len(wav) - 1):
        verdict = completeness.check(cut_copy(path, tmp_path / "c.wav", cut))
        assert verdict.state == "incomplete", f"{cut}: {verdict.reason}"


def test_wav_odd_sized_audio_needs_its_pad_byte(tmp_path: Path) -> None:
    wav = _wav(bytes(range(256)) * 40 + b"\x01", 1, 8)  # 10,241 bytes of 8-bit audio
    path = tmp_path / "odd.wav"
    path.write_bytes(wav)
    assert completeness.check(path).state == "complete"
    cut = completeness.check(cut_copy(path, tmp_path / "c.wav", len(wav) - 1))
    assert cut.state == "incomplete", cut.reason


def test_wav_ending_in_digital_silence_is_no_proof_either_way(tmp_path: Path) -> None:
    """PCM may end in 64 KiB of zeros: neither complete (a preallocated copy looks the same)
    nor incomplete (a recording may end in silence)."""
    path = tmp_path / "silence.wav"
    path.write_bytes(_wav(np.ones(20_000, np.int16).tobytes() + bytes(100_000), 1, 16))
    verdict = completeness.check(path)
    assert (verdict.state, verdict.format) == ("unknown", "wav"), verdict.reason
    assert "digital silence" in verdict.reason


# --- MP4 ----------------------------------------------------------------------------------------


def test_mp4_ending_in_a_free_box_of_zeros_is_complete(
    library: mediagen.Library, tmp_path: Path
) -> None:
    path = tmp_path / "free.mp4"
    shutil.copyfile(library.path("mp4-moov-at-end"), path)
    with path.open("ab") as f:
        f.write(struct.pack(">I", 200_008) + b"free" + bytes(200_000))
    verdict = completeness.check(path)
    assert (verdict.state, verdict.conclusive) == ("complete", True), verdict.reason


def test_mp4_with_a_64_bit_mdat_size(library: mediagen.Library, tmp_path: Path) -> None:
    """Files over 4 GiB: ffmpeg's 8-byte 'free' box before mdat becomes a 64-bit size."""
    data = bytearray(library.path("mp4-moov-at-end").read_bytes())
    mdat = data.index(b"mdat") - 4
    assert data[mdat - 8 : mdat] == b"\0\0\0\x08free"
    size = int.from_bytes(data[mdat : mdat + 4], "big")
    data[mdat - 8 : mdat + 8] = b"\0\0\0\x01mdat" + (size + 8).to_bytes(8, "big")
    path = tmp_path / "large.mp4"
    path.write_bytes(bytes(data))
    assert completeness.check(path).state == "complete"
    cut = completeness.check(cut_copy(path, tmp_path / "c.mp4", mdat + 1000))
    assert cut.state == "incomplete" and "mdat" in cut.reason, cut.reason


def test_faststart_mp4_whose_mdat_runs_to_the_end(
    library: mediagen.Library, tmp_path: Path
) -> None:
    """Size 0 = 'to the end of the file', allowed for the last box: whole, not conclusive."""
    data = bytearray(library.path("mp4-faststart").read_bytes())
    mdat = data.index(b"mdat") - 4
    data[mdat : mdat + 4] = bytes(4)
    path = tmp_path / "open-ended.mp4"
    path.write_bytes(bytes(data))
    verdict = completeness.check(path)
    assert (verdict.state, verdict.conclusive) == ("complete", False), verdict.reason


def test_mp4_without_its_moov_yet(library: mediagen.Library, tmp_path: Path) -> None:
    """A recorder that writes the index last and has not finished (or crashed)."""
    src = library.path("mp4-moov-at-end")
    moov = src.read_bytes().index(b"moov") - 4
    verdict = completeness.check(cut_copy(src, tmp_path / "rec.mp4", moov))
    assert verdict.state == "incomplete" and "no moov" in verdict.reason, verdict.reason


def test_fragment_without_its_mdat(library: mediagen.Library, tmp_path: Path) -> None:
    src = library.path("fmp4-no-mfra")
    last_mdat = src.read_bytes().rindex(b"mdat") - 4
    verdict = completeness.check(cut_copy(src, tmp_path / "f.mp4", last_mdat))
    assert verdict.state == "incomplete" and "has no mdat" in verdict.reason, verdict.reason


# --- Matroska / WebM ----------------------------------------------------------------------------


def test_matroska_ending_in_a_void_element_is_complete(
    library: mediagen.Library, tmp_path: Path
) -> None:
    data = bytearray(library.path("mkv").read_bytes())
    seg = data.index(bytes.fromhex("18538067"))
    assert data[seg + 4] == 0x01  # an 8-byte size field, as ffmpeg writes it
    size = int.from_bytes(data[seg + 5 : seg + 12], "big")
    void = b"\xec" + b"\x01" + (200_000).to_bytes(7, "big") + bytes(200_000)
    data[seg + 5 : seg + 12] = (size + len(void)).to_bytes(7, "big")
    path = tmp_path / "void.mkv"
    path.write_bytes(bytes(data) + void)
    verdict = completeness.check(path)
    assert (verdict.state, verdict.conclusive) == ("complete", True), verdict.reason
    cut = completeness.check(cut_copy(path, tmp_path / "c.mkv", len(data) + 100))
    assert cut.state == "incomplete", cut.reason


@pytest.mark.parametrize("seconds", [4, 20])  # 20 s is > 256 KiB: the tail re-synchronises
def test_webm_with_unknown_size_clusters(tmp_path: Path, seconds: int) -> None:
    """As browsers' MediaRecorder writes WebM: every Cluster of unknown size."""
    live = mediagen.make_ffmpeg(tmp_path / "live.webm", "-c:a", "libopus", "-b:a", "160k",
                                "-live", "1", "-f", "webm", seconds=seconds, pipe=True)  # fmt: skip
    path = mediagen.unknown_size_clusters(live, tmp_path / "rec.webm")
    whole = completeness.check(path)
    assert (whole.state, whole.format, whole.conclusive) == ("complete", "webm", False), (
        whole.reason
    )
    assert "unknown size" in whole.reason
    blocks = mediagen.simple_block_starts(path)
    assert len(blocks) > 100
    wrong, cuts = [], mediagen.cut_points(path.stat().st_size, steps=16)
    for cut in cuts + sorted(blocks)[10::40]:  # a cut exactly on a block is whole, not proof
        verdict = completeness.check(cut_copy(path, tmp_path / "c.webm", cut))
        expected = ("complete", False) if cut in blocks else ("incomplete", True)
        if (verdict.state, verdict.conclusive) != expected:
            wrong.append(f"{cut}: {verdict.state} {verdict.reason}")
    assert not wrong, "\n".join(wrong)
