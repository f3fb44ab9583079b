"""Shared pieces of the completeness checkers: the verdict, a bounded reader, helpers.

:class:`Reader` reads a file only with ``pread`` at explicit offsets and counts every byte
and call, so a test (and the log) can prove that a check of a 10 GB file reads a few hundred
KiB at most. The file size is taken once, when the reader opens: a file still growing is
judged as it was at that instant.

:class:`Finding` is what a format checker returns: a state and a one-line reason, plus where
zero bytes at the end of the file are legitimate (structural padding) or merely ambiguous
(PCM samples, which may be digital silence). :func:`daemon.media.completeness.check` turns
it into the public :class:`Verdict` after its zero-tail test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

State = Literal["complete", "incomplete", "unknown"]

TAIL_WINDOW = 64 * 1024  # the zero-tail test and most tail scans look at this much
HEAD_WINDOW = 64 * 1024  # format sniffing and header parsing read at most this much
SMALL_FILE = 256 * 1024  # a file this small is read once, whole, and served from memory


@dataclass(frozen=True)
class Verdict:
    """Whether a media file is complete, judged from its own structure.

    ``state``: ``complete``, ``incomplete`` or ``unknown`` (format not recognised, or the
    structure cannot tell; the caller falls back to its stability window).
    ``format``: short name (``wav``, ``mp4``, ``matroska``, ``mp3`` …, or ``unknown``).
    ``reason``: one line for a human, e.g. ``MP4: mdat box declares … bytes but …``.
    ``conclusive``: for ``complete``, True when the file itself declares where it ends
    (a size in a header, an index written last, an end-of-stream flag), so a file still
    being appended to cannot pass; False when every frame up to the end is whole but a
    stream cut exactly at a frame boundary would look the same (CBR MP3, ADTS, MPEG-TS,
    AMR, fragmented MP4, live Matroska). Always True for ``incomplete``; False for
    ``unknown``.
    ``bytes_read`` / ``reads``: what the check cost.
    """

    state: State
    format: str
    reason: str
    conclusive: bool = False
    bytes_read: int = 0
    reads: int = 0


@dataclass(frozen=True)
class Finding:
    """A format checker's result, before the zero-tail test.

    ``padding_from``: offset from which zero bytes at the end are structural padding (an
    MP4 ``free`` box, a Matroska ``Void``), so a zero tail after it proves nothing.
    ``pcm_from``: offset from which the tail holds raw PCM samples, where zeros may be
    digital silence: a zero tail there makes the verdict ``unknown``.
    """

    state: State
    reason: str
    conclusive: bool = False
    padding_from: int | None = None
    pcm_from: int | None = None


def complete(reason: str, *, conclusive: bool, **kw: int | None) -> Finding:
    """A ``complete`` finding."""
    return Finding("complete", reason, conclusive, **kw)


def incomplete(reason: str) -> Finding:
    """An ``incomplete`` finding (always conclusive at the instant of the check)."""
    return Finding("incomplete", reason, True)


def unknown(reason: str) -> Finding:
    """An ``unknown`` finding: the structure cannot tell."""
    return Finding("unknown", reason, False)


def n(value: int) -> str:
    """A byte count or offset as a human reads it: ``52,000,000``."""
    return f"{value:,}"


class Reader:
    """Positioned reads of one file, counted; ``size`` is fixed when it opens."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.size = os.fstat(self._fd).st_size
        except OSError:
            os.close(self._fd)
            raise
        self.bytes_read = 0
        self.reads = 0
        self._tail: bytes | None = None
        self._whole: bytes | None = None
        if self.size <= SMALL_FILE:
            self._whole = self.read(0, self.size)

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self._fd)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``, never past ``size``; short at the end."""
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        if self._whole is not None:
            return self._whole[offset : offset + length]
        data = os.pread(self._fd, length, offset)
        self.reads += 1
        self.bytes_read += len(data)
        return data

    def tail(self, length: int = TAIL_WINDOW) -> tuple[int, bytes]:
        """The last ``length`` bytes (at most) and their offset; served from the largest
        tail read so far when it covers them."""
        start = max(0, self.size - length)
        if self._tail is None or len(self._tail) < self.size - start:
            self._tail = self.read(start, self.size - start)
        return start, self._tail[len(self._tail) - (self.size - start) :]


def zero_run_at_end(data: bytes) -> int:
    """How many zero bytes ``data`` ends with."""
    return len(data) - len(data.rstrip(b"\0"))


def strip_trailing_tags(reader: Reader, start: int, end: int) -> tuple[int, str]:
    """Where the audio of an MP3/ADTS/FLAC stream ends: before ID3v1, APEv2, Lyrics3 tags.

    Returns the end offset and a note naming the tags that were skipped ("" if none).
    """
    notes: list[str] = []
    for _ in range(4):  # tags stack in a few known orders; never loop forever
        if end - start >= 128 and reader.read(end - 128, 3) == b"TAG":
            end -= 128
            notes.append("ID3v1")
            continue
        footer = reader.read(end - 32, 32) if end - start >= 32 else b""
        if footer[:8] == b"APETAGEX":
            size = int.from_bytes(footer[12:16], "little")  # footer + items
            has_header = bool(int.from_bytes(footer[20:24], "little") & 0x80000000)
            end -= size + (32 if has_header else 0)
            notes.append("APEv2")
            continue
        if end - start >= 15 and reader.read(end - 9, 9) == b"LYRICS200":
            digits = reader.read(end - 15, 6)
            end -= (int(digits) if digits.isdigit() else 0) + 15
            notes.append("Lyrics3")
            continue
        break
    return max(start, end), (" before " + "+".join(reversed(notes)) if notes else "")


def id3v2_size(head: bytes) -> int:
    """Bytes taken by an ID3v2 tag at the start of ``head`` (0 when there is none)."""
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer
