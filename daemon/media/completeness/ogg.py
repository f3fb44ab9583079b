"""Ogg (Opus, Vorbis, FLAC-in-Ogg, Speex …): the last page whole, checksummed, end-of-stream.

An Ogg page is a 27-byte header (``OggS``, version 0, header type, granule, serial, page
sequence, CRC-32, segment count), a lacing table and the segments; its length follows from
the lacing table. The check reads the tail (two maximal pages), syncs on the first page
there whose successor also starts with ``OggS``, walks page by page to the end, and then
wants the last page to end exactly at the end of the file, to carry the end-of-stream flag
(header type bit 0x04), and to match its CRC (Ogg's: polynomial 0x04C11DB7, not reflected).
A writer sets the flag only on its final page, so a complete verdict is conclusive.
"""

from __future__ import annotations

from daemon.media.completeness.base import Finding, Reader, complete, incomplete, n, unknown

MAX_PAGE = 27 + 255 + 255 * 255
WINDOW = 2 * MAX_PAGE + 27


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()


def ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32 of ``page`` (whose own CRC field must already be zeroed)."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[(crc >> 24) ^ byte]
    return crc


def page_length(buf: bytes, pos: int) -> int | None:
    """Length of the page at ``buf[pos]``; None if no page header is there; -1 if cut off."""
    if buf[pos : pos + 4] != b"OggS"[: len(buf) - pos]:
        return None
    if pos + 27 > len(buf):
        return -1
    if buf[pos + 4] != 0 or buf[pos + 5] & 0xF8:
        return None
    segments = buf[pos + 26]
    if pos + 27 + segments > len(buf):
        return -1
    return 27 + segments + sum(buf[pos + 27 : pos + 27 + segments])


def _walk(buf: bytes, start: int) -> tuple[int, int, int]:
    """(pages walked, offset of the last page walked, stop offset) from ``start``.

    The stop offset is ``len(buf)`` when the walk lands on the end, ``-pos - 1`` when the
    page at ``pos`` is cut off, and ``pos`` when no page header is at ``pos``.
    """
    pos, pages, last = start, 0, start
    while pos < len(buf):
        length = page_length(buf, pos)
        if length is None:
            return pages, last, pos
        if length == -1 or pos + length > len(buf):
            return pages, last, -pos - 1
        pages, last, pos = pages + 1, pos, pos + length
    return pages, last, pos


def check_ogg(reader: Reader, head: bytes) -> Finding:
    """Judge an Ogg file by its last page."""
    base, buf = reader.tail(WINDOW)
    at = buf.find(b"OggS")
    while at != -1:
        pages, last, stop = _walk(buf, at)
        if pages >= 2 or (base == 0 and at == 0) or stop < 0:
            return _judge(buf, base, pages, last, stop)
        at = buf.find(b"OggS", at + 1)
    return unknown(f"Ogg: no page found in the last {n(len(buf))} bytes")


def _judge(buf: bytes, base: int, pages: int, last: int, stop: int) -> Finding:
    if stop < 0:
        pos = -stop - 1
        length = page_length(buf, pos)
        if length in (None, -1):
            return incomplete(f"Ogg: the file ends inside the page header at {n(base + pos)}")
        return incomplete(
            f"Ogg: the page at {n(base + pos)} declares {n(length)} bytes but the file ends "
            f"after {n(len(buf) - pos)} of them"
        )
    if stop != len(buf):
        rest = buf[stop:]
        what = "zero bytes" if rest.rstrip(b"\0") == b"" else "bytes that are not an Ogg page"
        return incomplete(f"Ogg: {n(len(rest))} {what} after the last page at {n(base + last)}")
    page = bytearray(buf[last:])
    stored = int.from_bytes(page[22:26], "little")
    page[22:26] = bytes(4)
    if ogg_crc(bytes(page)) != stored:
        return incomplete(
            f"Ogg: the last page at {n(base + last)} fails its CRC (not fully written)"
        )
    serial, granule = int.from_bytes(page[14:18], "little"), int.from_bytes(page[6:14], "little")
    if not page[5] & 0x04:
        return incomplete(
            f"Ogg: the last page (stream {serial:#x}, granule {n(granule)}) has no "
            "end-of-stream flag: the writer has not finished"
        )
    return complete(
        f"Ogg: the last page (stream {serial:#x}, granule {n(granule)}) ends the file, "
        "passes its CRC and carries the end-of-stream flag",
        conclusive=True,
    )  # fmt: skip
