"""FLAC: metadata blocks inside the file, the last frame whole, STREAMINFO's sample count.

After ``fLaC`` come metadata blocks (1-byte flags/type, 24-bit length; STREAMINFO first, with
the total number of samples, 0 when the writer could not fill it in), then frames. A frame
header starts with the sync 0xFFF8/0xFFF9 and ends with a CRC-8; the frame ends with a CRC-16
of the whole frame. Frames carry no length, so the check finds the last frame headers in
the tail (valid CRC-8), takes the last one whose CRC-16 matches up to the end of the audio,
and compares the sample at which that frame ends with STREAMINFO's total (conclusive when
the total is known and matches).
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.media.completeness.base import (
    Finding,
    Reader,
    complete,
    id3v2_size,
    incomplete,
    n,
    strip_trailing_tags,
    unknown,
)

MAX_BLOCKS = 1024


def _crc_table(poly: int, width: int) -> list[int]:
    top, mask, table = 1 << (width - 1), (1 << width) - 1, []
    for i in range(256):
        r = i << (width - 8)
        for _ in range(8):
            r = ((r << 1) ^ poly) if r & top else (r << 1)
        table.append(r & mask)
    return table


_CRC8, _CRC16 = _crc_table(0x07, 8), _crc_table(0x8005, 16)


def crc8(data: bytes) -> int:
    """FLAC's frame-header CRC-8 (polynomial 0x07)."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def crc16(data: bytes) -> int:
    """FLAC's frame CRC-16 (polynomial 0x8005, not reflected)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


@dataclass(frozen=True)
class StreamInfo:
    """The fields of STREAMINFO the check needs."""

    max_block: int
    max_frame: int
    total_samples: int


@dataclass(frozen=True)
class FrameHeader:
    """A parsed frame header: where its samples start and how many it holds."""

    first_sample: int
    block_size: int


def _utf8_number(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(value, length) of FLAC's UTF-8-like coded frame/sample number at ``buf[pos]``."""
    first = buf[pos]
    length = 1 if first < 0x80 else 8 - (first ^ 0xFF).bit_length()
    if length == 1:
        return first, 1
    if not 2 <= length <= 7 or pos + length > len(buf):
        return None
    value = first & (0x7F >> length)
    for byte in buf[pos + 1 : pos + length]:
        if byte & 0xC0 != 0x80:
            return None
        value = (value << 6) | (byte & 0x3F)
    return value, length


def parse_frame_header(buf: bytes, pos: int, info: StreamInfo) -> FrameHeader | None:
    """The frame header at ``buf[pos]`` if its fields are legal and its CRC-8 matches."""
    if pos + 6 > len(buf) or buf[pos] != 0xFF or buf[pos + 1] & 0xFE != 0xF8:
        return None
    b2, b3 = buf[pos + 2], buf[pos + 3]
    bs_code, sr_code = b2 >> 4, b2 & 0x0F
    if bs_code == 0 or sr_code == 15 or b3 >> 4 >= 11 or (b3 >> 1) & 7 == 3 or b3 & 1:
        return None
    number = _utf8_number(buf, pos + 4)
    if number is None:
        return None
    at = pos + 4 + number[1]
    extra_bs = {6: 1, 7: 2}.get(bs_code, 0)
    extra_sr = {12: 1, 13: 2, 14: 2}.get(sr_code, 0)
    end = at + extra_bs + extra_sr
    if end >= len(buf) or crc8(buf[pos:end]) != buf[end]:
        return None
    if bs_code == 1:
        block = 192
    elif bs_code <= 5:
        block = 576 << (bs_code - 2)
    elif extra_bs:
        block = int.from_bytes(buf[at : at + extra_bs], "big") + 1
    else:
        block = 256 << (bs_code - 8)
    variable = buf[pos + 1] & 1
    first = number[0] if variable else number[0] * info.max_block
    return FrameHeader(first, block)


def _metadata(reader: Reader, start: int) -> tuple[StreamInfo | None, int, str]:
    """(STREAMINFO, offset of the first frame, problem or "") after the ``fLaC`` marker."""
    pos, info = start + 4, None
    for _ in range(MAX_BLOCKS):
        head = reader.read(pos, 4)
        if len(head) < 4:
            return info, pos, f"the file ends inside the metadata block header at {n(pos)}"
        length = int.from_bytes(head[1:4], "big")
        if pos + 4 + length > reader.size:
            return (
                info,
                pos,
                (
                    f"metadata block {head[0] & 0x7F} at {n(pos)} declares {n(length)} bytes but "
                    f"the file ends after {n(reader.size - pos - 4)} of them"
                ),
            )
        if head[0] & 0x7F == 0 and length >= 34:
            raw = reader.read(pos + 4, 34)
            packed = int.from_bytes(raw[10:18], "big")
            info = StreamInfo(
                int.from_bytes(raw[2:4], "big"),
                int.from_bytes(raw[7:10], "big"),
                packed & ((1 << 36) - 1),
            )
        pos += 4 + length
        if head[0] & 0x80:
            return info, pos, ""
    return info, pos, f"more than {MAX_BLOCKS} metadata blocks"


def check_flac(reader: Reader, head: bytes) -> Finding:
    """Judge a native FLAC file; see the module docstring."""
    start = id3v2_size(head)
    info, audio, problem = _metadata(reader, start)
    if problem:
        return incomplete(f"FLAC: {problem}")
    if info is None:
        return unknown("FLAC: no STREAMINFO block")
    end, tags = strip_trailing_tags(reader, audio, reader.size)
    if end <= audio:
        return incomplete(f"FLAC: the metadata ends at {n(audio)} and no frame follows yet")
    window = max(2 * info.max_frame + 64, 64 * 1024) if info.max_frame else 256 * 1024
    base = max(audio, end - window)
    buf = reader.tail(end - base)[1] if end == reader.size else reader.read(base, end - base)
    return _judge_tail(buf, base, end, info, tags)


def _judge_tail(buf: bytes, base: int, end: int, info: StreamInfo, tags: str) -> Finding:
    headers = []
    pos = buf.find(0xFF)
    while pos != -1:
        frame = parse_frame_header(buf, pos, info)
        if frame is not None:
            headers.append((pos, frame))
        pos = buf.find(0xFF, pos + 1)
    if not headers:
        return unknown(f"FLAC: no frame header in the last {n(len(buf))} bytes")
    for pos, frame in reversed(headers[-3:]):
        body = buf[pos:]
        if len(body) > 2 and crc16(body[:-2]) == int.from_bytes(body[-2:], "big"):
            return _judge_samples(base + pos, end, frame, info, tags)
    if len(buf) - len(buf.rstrip(b"\0")) >= 16:
        what = "is followed by zero bytes (preallocated space not yet written?)"
    else:
        what = "is cut off (its CRC-16 does not match up to the end of the file)"
    return incomplete(f"FLAC: the last frame at {n(base + headers[-1][0])} {what}")


def _judge_samples(pos: int, end: int, frame: FrameHeader, info: StreamInfo, tags: str) -> Finding:
    last = frame.first_sample + frame.block_size
    if info.total_samples == 0:
        return complete(
            f"FLAC: the last frame at {n(pos)} is whole and ends the audio{tags}; STREAMINFO "
            "gives no sample count, so a stream cut at a frame boundary looks the same",
            conclusive=False,
        )  # fmt: skip
    if last < info.total_samples:
        return incomplete(
            f"FLAC: the last whole frame ends at sample {n(last)} but STREAMINFO declares "
            f"{n(info.total_samples)}"
        )
    return complete(
        f"FLAC: the last frame ends at sample {n(last)} of {n(info.total_samples)} declared "
        f"and its CRC-16 matches up to {n(end)}{tags}",
        conclusive=last == info.total_samples,
    )  # fmt: skip
