"""Every media kind: complete when whole, incomplete when cut anywhere or preallocated.

Each file is real (ffmpeg/PyAV, :mod:`tests.mediagen`), cut at every 1/33 of its length, at
512 and 4096 bytes and one byte short. A kind judged only by framing (MP3 without Xing,
ADTS, TS, AMR, a live Matroska or fragmented MP4, a streamed FLAC) may call a cut that lands
exactly on a frame boundary complete, and then never conclusively; the boundaries come from
PyAV's demuxer, not from the code under test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from daemon.media import completeness
from tests import mediagen

PCM = {"wav", "wav-24bit", "rf64", "aiff", "aifc"}
NAMES = [k.name for k in mediagen.KINDS]


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> mediagen.Library:
    return mediagen.Library.shared(tmp_path_factory)


@pytest.mark.parametrize("name", NAMES)
def test_whole_file_is_complete(library: mediagen.Library, name: str) -> None:
    kind = mediagen.BY_NAME[name]
    verdict = completeness.check(library.path(name))
    assert (verdict.state, verdict.format) == ("complete", kind.fmt), verdict.reason
    assert verdict.conclusive is kind.conclusive, verdict.reason


@pytest.mark.parametrize("name", NAMES)
def test_every_cut_is_incomplete(library: mediagen.Library, name: str, tmp_path: Path) -> None:
    kind = mediagen.BY_NAME[name]
    src = library.path(name)
    boundaries = set() if kind.conclusive else mediagen.frame_boundaries(kind, src)
    copy = tmp_path / src.name
    shutil.copyfile(src, copy)
    wrong, judged = [], 0
    for cut in sorted(mediagen.cut_points(src.stat().st_size), reverse=True):
        os.truncate(copy, cut)  # longest first, so one copy serves every cut
        verdict = completeness.check(copy)
        if cut in boundaries:
            ok = verdict.state == "complete" and not verdict.conclusive
        else:
            ok = verdict.state == "incomplete" and verdict.format == kind.fmt
            judged += 1
        if not ok:
            wrong.append(f"cut at {cut}: {verdict.state} ({verdict.reason})")
    assert not wrong, "\n".join(wrong)
    assert judged >= 30  # the cuts really were mostly off the frame boundaries


@pytest.mark.parametrize("name", NAMES)
def test_preallocated_file_with_zero_tail(
    library: mediagen.Library, name: str, tmp_path: Path
) -> None:
    """Full size at once (as Windows Explorer over SMB does), then the bytes in order."""
    src = library.path(name)
    size = src.stat().st_size
    expected = "unknown" if name in PCM else "incomplete"  # PCM may end in digital silence
    for written in sorted({size // 10, size // 2, max(size // 2, size - completeness.ZERO_TAIL)}):
        copy = mediagen.preallocated_copy(src, tmp_path / f"{written}{src.suffix}", written)
        verdict = completeness.check(copy)
        assert verdict.state == expected, f"{written} of {size} written: {verdict.reason}"
        assert "zero" in verdict.reason, verdict.reason  # says why: bytes never written


@pytest.mark.parametrize("name", NAMES)
def test_cut_on_a_packet_boundary(library: mediagen.Library, name: str, tmp_path: Path) -> None:
    """A cut exactly between two packets: conclusive kinds still say incomplete; framing
    kinds say complete, but never conclusively."""
    kind = mediagen.BY_NAME[name]
    src = library.path(name)
    size = src.stat().st_size
    packets = sorted(mediagen.packet_positions(src))
    chosen = [p for p in packets[len(packets) // 4 :: max(1, len(packets) // 8)] if 1024 < p < size]
    assert len(chosen) >= 5
    allowed = mediagen.frame_boundaries(kind, src) if not kind.conclusive else set()
    copy = tmp_path / src.name
    shutil.copyfile(src, copy)
    for cut in sorted(chosen, reverse=True):
        os.truncate(copy, cut)
        verdict = completeness.check(copy)
        if cut in allowed:
            assert (verdict.state, verdict.conclusive) == ("complete", False), verdict.reason
        else:
            assert verdict.state == "incomplete", f"cut at {cut}: {verdict.reason}"
