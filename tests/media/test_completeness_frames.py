"""Frame and page formats: MP3 and ADTS tags and Xing counts, AMR, MPEG-TS, Ogg, FLAC.

Each file is real media from ffmpeg/PyAV, edited the way a real writer or tagger leaves it
(AMR-WB is built by hand: there is no AMR-WB encoder here).
"""

from __future__ import annotations

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


# --- MP3 and ADTS -------------------------------------------------------------------------------


def _id3v2(payload_size: int) -> bytes:
    frame = b"TXXX" + struct.pack(">I", payload_size) + b"\0\0" + b"\0" + b"x" * (payload_size - 1)
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def test_mp3_behind_a_large_id3v2_tag(library: mediagen.Library, tmp_path: Path) -> None:
    """A 300 KB cover picture before the audio: sniffed and judged past the tag."""
    audio = library.path("mp3-cbr-noxing").read_bytes()
    audio = audio[audio.index(b"\xff\xfb") :]  # drop ffmpeg's own small tag
    path = tmp_path / "cover.mp3"
    path.write_bytes(_id3v2(300_000) + audio)
    verdict = completeness.check(path)
    assert (verdict.state, verdict.format) == ("complete", "mp3"), verdict.reason
    cut = completeness.check(cut_copy(path, tmp_path / "c.mp3", path.stat().st_size - 1000))
    assert cut.state == "incomplete", cut.reason
    in_tag = completeness.check(cut_copy(path, tmp_path / "t.mp3", 200_000))
    assert in_tag.state != "complete", in_tag.reason


def _ape_tag() -> bytes:
    item = struct.pack("<II", 5, 0) + b"Title\0" + b"hello"
    size = len(item) + 32
    footer = b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, 0x80000000) + bytes(8)
    header = b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, 0xA0000000) + bytes(8)
    return header + item + footer


@pytest.mark.parametrize("name", ["mp3-cbr-noxing", "adts"])
def test_trailing_ape_tag(library: mediagen.Library, tmp_path: Path, name: str) -> None:
    src = library.path(name)
    path = tmp_path / f"ape{src.suffix}"
    whole = src.read_bytes() + _ape_tag()
    path.write_bytes(whole)
    verdict = completeness.check(path)
    assert verdict.state == "complete" and "APEv2" in verdict.reason, verdict.reason
    cut = completeness.check(cut_copy(path, tmp_path / f"c{path.suffix}", len(whole) - 10))
    assert cut.state == "incomplete" and "tag" in cut.reason, cut.reason


def test_mp3_whose_xing_counts_are_still_zero(library: mediagen.Library, tmp_path: Path) -> None:
    """ffmpeg reserves the Xing/Info frame and fills in the counts when it finishes."""
    data = bytearray(library.path("mp3-xing").read_bytes())
    at = data.index(b"Info") + 8
    data[at : at + 8] = bytes(8)  # frames and bytes
    path = tmp_path / "x.mp3"
    path.write_bytes(bytes(data))
    verdict = completeness.check(path)
    assert verdict.state == "incomplete" and "still zero" in verdict.reason, verdict.reason


def test_mp3_followed_by_unknown_bytes_is_unknown(
    library: mediagen.Library, tmp_path: Path
) -> None:
    """Trailing data that is neither a frame nor a known tag: no opinion, not a false alarm."""
    path = tmp_path / "junk.mp3"
    path.write_bytes(library.path("mp3-cbr-noxing").read_bytes() + b"some trailer text" * 10)
    verdict = completeness.check(path)
    assert (verdict.state, verdict.format) == ("unknown", "mp3"), verdict.reason


# --- AMR ----------------------------------------------------------------------------------------


def test_amr_wb_frames(tmp_path: Path) -> None:
    """AMR-WB frames built by the storage format (mode 8, Q bit set: 61 bytes each)."""
    rng = np.random.default_rng(3)
    frames = b"".join(b"\x44" + rng.bytes(60) for _ in range(500))
    path = tmp_path / "wb.amr"
    path.write_bytes(b"#!AMR-WB\n" + frames)
    verdict = completeness.check(path)
    assert (verdict.state, verdict.format) == ("complete", "amr"), verdict.reason
    for cut in (9 + 61 * 200 + 1, 9 + 61 * 499 + 60):
        assert completeness.check(cut_copy(path, tmp_path / "c.amr", cut)).state == "incomplete"


def test_long_amr_is_judged_from_its_tail(library: mediagen.Library, tmp_path: Path) -> None:
    """A 40-minute AMR-NB file (the frames of the 20 s one, repeated): bounded reads."""
    data = library.path("amr-nb").read_bytes()
    path = tmp_path / "long.amr"
    path.write_bytes(data[:6] + data[6:] * 120)
    verdict = completeness.check(path)
    assert verdict.state == "complete" and verdict.bytes_read < 200 * 1024, verdict
    size = path.stat().st_size
    for cut in (size - 1, size - 1000, size // 2 + 7):
        assert completeness.check(cut_copy(path, tmp_path / "c.amr", cut)).state == "incomplete"


def test_small_preallocated_amr_at_every_alignment(
    library: mediagen.Library, tmp_path: Path
) -> None:
    """A zero byte reads as an AMR-NB mode-0 header (13-byte frames): a zero tail shorter
    than 64 KiB must not pass as frames, however it aligns."""
    written = library.path("amr-nb").read_bytes()[: 6 + 32 * 300]  # 300 frames of 12.2 kbit/s
    path = tmp_path / "pre.amr"
    for shift in range(13):
        path.write_bytes(written + bytes(13 * 100 + shift))
        verdict = completeness.check(path)
        assert verdict.state == "incomplete" and "zero" in verdict.reason, (shift, verdict.reason)


# --- MPEG-TS, Ogg, FLAC -------------------------------------------------------------------------


def test_ts_whose_last_packet_lost_its_sync(library: mediagen.Library, tmp_path: Path) -> None:
    data = bytearray(library.path("mpegts").read_bytes())
    data[-188:] = bytes(188)
    path = tmp_path / "z.ts"
    path.write_bytes(bytes(data))
    verdict = completeness.check(path)
    assert verdict.state == "incomplete" and "sync" in verdict.reason, verdict.reason


def test_ogg_cut_before_its_last_page_has_no_end_of_stream(
    library: mediagen.Library, tmp_path: Path
) -> None:
    """What a killed recorder leaves: whole pages, but none with the end-of-stream flag."""
    src = library.path("ogg-opus")
    last_page = src.read_bytes().rindex(b"OggS")
    verdict = completeness.check(cut_copy(src, tmp_path / "o.opus", last_page))
    assert verdict.state == "incomplete" and "end-of-stream" in verdict.reason, verdict.reason


def test_ogg_last_page_with_a_bad_checksum(library: mediagen.Library, tmp_path: Path) -> None:
    data = bytearray(library.path("ogg-vorbis").read_bytes())
    data[-1] ^= 0xFF  # a byte not (yet) what the page's CRC covers
    path = tmp_path / "crc.ogg"
    path.write_bytes(bytes(data))
    verdict = completeness.check(path)
    assert verdict.state == "incomplete" and "CRC" in verdict.reason, verdict.reason


def test_flac_cut_between_frames_falls_short_of_streaminfo(
    library: mediagen.Library, tmp_path: Path
) -> None:
    src = library.path("flac")
    frames = sorted(mediagen.packet_positions(src))
    verdict = completeness.check(cut_copy(src, tmp_path / "f.flac", frames[len(frames) // 2]))
    assert verdict.state == "incomplete" and "STREAMINFO declares" in verdict.reason, verdict.reason
