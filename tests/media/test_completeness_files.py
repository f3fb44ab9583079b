"""Whole files as intake meets them: odd inputs, 1 GiB files, a real ffmpeg writing live.

* Odd inputs: unrecognised, empty, all-zero, gone and directory paths.
* Cost: 1 GiB sparse files built around real media keep the real bytes where the checker
  looks (header, index, tail) and leave the middle a hole; a check reads a few hundred KiB
  whatever the size (MP4 boxes and Matroska elements: one small header read each).
* A real ffmpeg writes 7 formats at once, flushing every packet, and is SIGKILLed part-way,
  as a crashed or still-running recorder leaves them: no check during the run or after the
  kill is a conclusive ``complete``. A finished run is conclusively complete for all 7.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.media import completeness
from tests import mediagen

GIB = 1 << 30
KIB = 1024


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> mediagen.Library:
    return mediagen.Library.shared(tmp_path_factory)


# --- odd inputs ---------------------------------------------------------------------------------


def test_unrecognised_and_empty_files_are_unknown(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not media\n" * 1000)
    verdict = completeness.check(text)
    assert (verdict.state, verdict.format) == ("unknown", "unknown")
    assert "not recognised" in verdict.reason
    empty = tmp_path / "empty.wav"
    empty.touch()
    assert completeness.check(empty).state == "unknown"


def test_a_preallocated_file_with_nothing_written_yet(tmp_path: Path) -> None:
    path = tmp_path / "copying.mp4"
    with path.open("wb") as f:
        f.truncate(50_000_000)
    verdict = completeness.check(path)
    assert verdict.state == "incomplete" and "all zero" in verdict.reason, verdict.reason


def test_a_gone_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        completeness.check(tmp_path / "gone.wav")


def test_a_directory_is_unknown_not_an_error(tmp_path: Path) -> None:
    verdict = completeness.check(tmp_path)
    assert verdict.state == "unknown" and "cannot read" in verdict.reason, verdict.reason


def test_sniff_names_the_format_from_the_first_bytes(library: mediagen.Library) -> None:
    for kind in mediagen.KINDS:
        head = library.path(kind.name).read_bytes()[: 64 * KIB]
        assert completeness.sniff(head) == kind.fmt, kind.name
    assert completeness.sniff(b"plain text, not media") is None


# --- cost on 1 GiB files ------------------------------------------------------------------------


def _boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Top-level MP4 boxes of a small real file: type -> (offset, size)."""
    found, pos = {}, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        found[kind] = (pos, size)
        pos += size
    return found


def preallocated_mp4(faststart: Path, dst: Path) -> Path:
    """A faststart MP4 whose mdat declares 1 GiB, of which only the real bytes are written."""
    data = bytearray(faststart.read_bytes())
    at, _ = _boxes(bytes(data))[b"mdat"]
    data[at : at + 4] = struct.pack(">I", GIB - at)
    with dst.open("wb") as f:
        f.truncate(GIB)
        f.write(data)
    return dst


def complete_mp4(moov_at_end: Path, dst: Path) -> Path:
    """ftyp + a 1 GiB mdat (real bytes first, then a hole) + the real moov at the end."""
    data = moov_at_end.read_bytes()
    boxes = _boxes(data)
    (mdat_at, mdat_size), (moov_at, moov_size) = boxes[b"mdat"], boxes[b"moov"]
    with dst.open("wb") as f:
        f.truncate(GIB)
        f.write(data[:mdat_at] + struct.pack(">I", GIB - mdat_at - moov_size)
                + data[mdat_at + 4 : mdat_at + mdat_size])  # fmt: skip
        f.seek(GIB - moov_size)
        f.write(data[moov_at : moov_at + moov_size])
    return dst


def wav(_: Path, dst: Path) -> Path:
    """A 1 GiB 16-bit stereo WAV: header, a hole, 64 KiB of noise at the end."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 2, 44100, 176400, 4, 16)
    with dst.open("wb") as f:
        f.truncate(GIB)
        f.write(b"RIFF" + struct.pack("<I", GIB - 8) + b"WAVEfmt " + fmt
                + b"data" + struct.pack("<I", GIB - 44))  # fmt: skip
        f.seek(GIB - 64 * KIB)
        f.write(os.urandom(64 * KIB))
    return dst


def matroska_many_clusters(mkv: Path, dst: Path, clusters: int = 10_000) -> Path:
    """The real header of ``mkv``, then ``clusters`` clusters of ~100 KiB (holes) to 1 GiB."""
    data = mkv.read_bytes()
    first = data.index(bytes.fromhex("1f43b675"))
    seg = data.index(bytes.fromhex("18538067"))
    head = bytearray(data[:first])
    step = (GIB - first) // clusters
    total = first + step * clusters
    head[seg + 4 : seg + 12] = b"\x01" + (total - seg - 12).to_bytes(7, "big")
    with dst.open("wb") as f:
        f.truncate(total)
        f.write(head)
        for i in range(clusters):
            f.seek(first + i * step)
            f.write(bytes.fromhex("1f43b675") + b"\x01" + (step - 12).to_bytes(7, "big"))
        f.seek(total - 64 * KIB)
        f.write(os.urandom(64 * KIB))
    return dst


def mp3(cbr: Path, dst: Path) -> Path:
    """The real first and last 100 KB of a CBR MP3 around a hole, 1 GiB in all."""
    data = cbr.read_bytes()
    with dst.open("wb") as f:
        f.truncate(GIB)
        f.write(data[:100_000])
        f.seek(GIB - 100_000)
        f.write(data[-100_000:])
    return dst


def fragmented_mp4(fmp4: Path, dst: Path) -> Path:
    """A fragmented MP4 with its 40 real fragments repeated: 6,000 moof/mdat pairs."""
    data = fmp4.read_bytes()
    first = data.index(b"moof") - 4
    dst.write_bytes(data[:first] + data[first:] * 150)
    return dst


#: name -> (builder, source media kind, expected state, elements walked)
LAYOUTS: dict[str, tuple[Callable[[Path, Path], Path], str, str, int]] = {
    "mp4 preallocated 1 GiB": (preallocated_mp4, "mp4-faststart", "incomplete", 0),
    "mp4 moov-at-end 1 GiB": (complete_mp4, "mp4-moov-at-end", "complete", 0),
    "wav 1 GiB": (wav, "wav", "complete", 0),
    "mkv 1 GiB, 10,000 clusters": (matroska_many_clusters, "mkv", "complete", 10_000),
    "mp3 1 GiB": (mp3, "mp3-cbr-noxing", "complete", 0),
    "fmp4 6,000 fragments": (fragmented_mp4, "fmp4-no-mfra", "complete", 12_000),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_check_reads_little_of_a_large_file(
    library: mediagen.Library, tmp_path: Path, layout: str
) -> None:
    build, kind, expected, walked = LAYOUTS[layout]
    path = build(library.path(kind), tmp_path / f"big{library.path(kind).suffix}")
    verdict = completeness.check(path)
    assert verdict.state == expected, verdict.reason
    assert verdict.bytes_read <= 400 * KIB + 16 * walked, verdict
    assert verdict.reads <= 20 + walked, verdict


# --- a real writer ------------------------------------------------------------------------------

OUTPUTS = {  # file name -> ffmpeg output options
    "out.mp4": ("-c:a", "aac"),
    "out.wav": ("-c:a", "pcm_s16le"),
    "out.ogg": ("-c:a", "libopus"),
    "out.mkv": ("-c:a", "aac"),
    "out.flac": ("-c:a", "flac"),
    "out.mp3": ("-c:a", "libmp3lame"),
    "out.m4a": ("-c:a", "aac", "-movflags", "+faststart"),
}


def _ffmpeg(folder: Path, seconds: float, *, readrate: float | None) -> subprocess.Popen[bytes]:
    """ffmpeg writing every OUTPUTS file, flushing each packet; ``readrate``: × real time."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "the ffmpeg binary is needed (scripts/setup installs it)"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-readrate", str(readrate)] if readrate else []
    cmd += ["-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:a=0.3:r=44100", "-ac", "2"]
    for name, opts in OUTPUTS.items():
        cmd += [*opts, "-flush_packets", "1", str(folder / name)]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)


def _watch(folder: Path, deadline: float) -> list[str]:
    """Check every output until each grew past 64 KiB; what was conclusively complete."""
    grown: set[str] = set()
    bad: list[str] = []
    while len(grown) < len(OUTPUTS) and time.monotonic() < deadline:
        for name in OUTPUTS:
            path = folder / name
            if not path.exists():
                continue
            verdict = completeness.check(path)
            if verdict.state == "complete" and verdict.conclusive:
                bad.append(f"{name} while running: {verdict.reason}")
            if path.stat().st_size > 64 * KIB:
                grown.add(name)
        time.sleep(0.02)
    assert grown == set(OUTPUTS), f"only {sorted(grown)} grew past 64 KiB in time"
    return bad


def test_files_of_a_killed_writer_are_never_conclusively_complete(tmp_path: Path) -> None:
    proc = _ffmpeg(tmp_path, 60, readrate=5)  # 5× real time: 12 s of work at most
    try:
        bad = _watch(tmp_path, time.monotonic() + 20)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    for name in OUTPUTS:
        verdict = completeness.check(tmp_path / name)
        if verdict.state == "complete" and verdict.conclusive:
            bad.append(f"{name} after SIGKILL: {verdict.reason}")
    assert not bad, "\n".join(bad)
    # the index-last formats are plainly incomplete once the writer died
    for name in ("out.mp4", "out.ogg", "out.m4a"):
        assert completeness.check(tmp_path / name).state == "incomplete", name


def test_files_of_a_finished_writer_are_complete(tmp_path: Path) -> None:
    proc = _ffmpeg(tmp_path, 3, readrate=None)
    assert proc.wait(timeout=60) == 0
    for name in OUTPUTS:
        verdict = completeness.check(tmp_path / name)
        assert (verdict.state, verdict.conclusive) == ("complete", True), (
            f"{name}: {verdict.reason}"
        )
