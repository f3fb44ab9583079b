"""Streams of self-delimiting frames (MP3, ADTS AAC, AMR): is the last frame whole?

These formats carry no total size, only frames whose header gives their own length. The
check reads the tail (a window large enough for several of the largest frames), finds the
first offset in it where a chain of frames with consistent headers begins (a sync), and
walks frame by frame to the end of the audio:

* the walk lands exactly on the end: complete, not conclusive (a stream cut at a frame
  boundary looks the same; MP3 can be conclusive through its Xing/Info/VBRI byte count);
* the last frame (or its header) reaches past the end: incomplete;
* zero bytes where a frame header belongs: incomplete (preallocated space);
* anything else after the last frame: unknown (junk or an unrecognised tag).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from daemon.media.completeness.base import Finding, Reader, complete, incomplete, n, unknown

#: parse(buf, pos) -> (consistency key, frame length) or None when no header is there.
Parser = Callable[[bytes, int], "tuple[object, int] | None"]


@dataclass(frozen=True)
class FrameFormat:
    """How to recognise one format's frames."""

    label: str  # "MP3", "ADTS", "AMR-NB", …
    parse: Parser
    header_len: int  # bytes needed to parse a header
    window: int  # bytes of tail to search (several maximal frames)
    chain: int  # consecutive frames that prove a sync
    sync_byte: int | None = None  # every header starts with this byte (0xFF for MPEG audio)


@dataclass(frozen=True)
class Walk:
    """Where a frame walk from a sync ended."""

    sync: int  # offset of the first frame walked (absolute)
    frames: int
    stop: int  # absolute offset where the walk stopped
    outcome: str  # "exact", "frame-cut", "header-cut", "garbage"
    declared: int = 0  # for frame-cut: the last frame's declared length


def _walk_from(
    fmt: FrameFormat, buf: bytes, start: int, key: object | None
) -> tuple[int, int, str, int]:
    """(frames, stop, outcome, declared) walking ``buf`` from ``start``."""
    pos, frames = start, 0
    while True:
        if pos == len(buf):
            return frames, pos, "exact", 0
        if pos + fmt.header_len > len(buf):
            return frames, pos, "header-cut", 0
        parsed = fmt.parse(buf, pos)
        if parsed is None or (key is not None and parsed[0] != key):
            return frames, pos, "garbage", 0
        key, length = parsed
        if pos + length > len(buf):
            return frames, pos, "frame-cut", length
        pos, frames = pos + length, frames + 1


def find_walk(fmt: FrameFormat, reader: Reader, audio_start: int, audio_end: int) -> Walk | None:
    """Sync on the tail window of [audio_start, audio_end) and walk to its end; None: no sync."""
    base = max(audio_start, audio_end - fmt.window)
    buf = (
        reader.tail(audio_end - base)[1]
        if audio_end == reader.size
        else reader.read(base, audio_end - base)
    )
    for offset in _candidates(fmt, buf):
        if fmt.parse(buf, offset) is None:
            continue
        frames, stop, outcome, declared = _walk_from(fmt, buf, offset, None)
        at_start = base == audio_start and offset == 0
        if frames >= fmt.chain or (at_start and (frames >= 1 or outcome != "garbage")):
            return Walk(base + offset, frames, base + stop, outcome, declared)
    return None


def _candidates(fmt: FrameFormat, buf: bytes) -> Iterator[int]:
    """Offsets in ``buf`` where a header may start (only those with the sync byte, if any)."""
    last = len(buf) - 1
    if fmt.sync_byte is None:
        yield from range(last + 1)
        return
    pos = buf.find(fmt.sync_byte)
    while pos != -1:
        yield pos
        pos = buf.find(fmt.sync_byte, pos + 1)


def judge_walk(fmt: FrameFormat, reader: Reader, walk: Walk | None, end: int, tags: str) -> Finding:
    """Turn a frame walk into a finding; ``tags`` names trailing tags already skipped."""
    label = fmt.label
    if walk is None:
        return unknown(
            f"{label}: no run of {fmt.chain} consistent frames in the last {n(fmt.window)} bytes"
        )
    if walk.outcome == "exact":
        return complete(
            f"{label}: the last frame ends exactly at the end of the audio at {n(end)}{tags} "
            "(no total size is declared: a stream cut at a frame boundary looks the same)",
            conclusive=False,
        )  # fmt: skip
    if walk.outcome == "frame-cut":
        return incomplete(
            f"{label}: the last frame at {n(walk.stop)} declares {n(walk.declared)} bytes but "
            f"the file ends after {n(end - walk.stop)} of them"
        )
    if walk.outcome == "header-cut":
        return incomplete(
            f"{label}: the file ends {n(end - walk.stop)} bytes into the frame header "
            f"at {n(walk.stop)}"
        )
    rest = reader.read(walk.stop, min(end - walk.stop, 4096))
    if rest.rstrip(b"\0") == b"":
        return incomplete(
            f"{label}: {n(end - walk.stop)} bytes after the last whole frame at {n(walk.stop)} "
            "start with zero bytes (preallocated space not yet written)"
        )
    id3v1_cut = end - walk.stop < 128 and b"TAG".startswith(rest[:3])
    if id3v1_cut or rest[:8] == b"APETAGEX" or (len(rest) < 8 and b"APETAGEX".startswith(rest)):
        return incomplete(
            f"{label}: a tag at {n(walk.stop)} is cut off ({n(end - walk.stop)} bytes)"
        )
    return unknown(
        f"{label}: {n(end - walk.stop)} bytes after the last whole frame at {n(walk.stop)} are "
        "not a frame or a known tag"
    )


# --- AMR (RFC 4867 storage format: "#!AMR\n" + frames of 1 header byte + speech bits) ----

AMR_NB_SIZES = (13, 14, 16, 18, 20, 21, 27, 32, 6, 0, 0, 0, 0, 0, 0, 1)
AMR_WB_SIZES = (18, 24, 33, 37, 41, 47, 51, 59, 61, 6, 0, 0, 0, 0, 1, 1)
AMR_MAGIC = {b"#!AMR\n": ("AMR-NB", AMR_NB_SIZES), b"#!AMR-WB\n": ("AMR-WB", AMR_WB_SIZES)}
AMR_WHOLE_FILE = 256 * 1024  # below this, walk from the first frame instead of syncing


def sniff_amr(head: bytes) -> str | None:
    """``amr`` for single-channel AMR-NB/AMR-WB storage files."""
    return "amr" if any(head.startswith(m) for m in AMR_MAGIC) else None


def _amr_parser(sizes: tuple[int, ...]) -> Parser:
    def parse(buf: bytes, pos: int) -> tuple[object, int] | None:
        """(0, frame length) of the AMR frame whose header byte is ``buf[pos]``, or None."""
        h = buf[pos]
        if h & 0x83:  # F bit and the two padding bits are always 0 in storage format
            return None
        size = sizes[(h >> 3) & 0x0F]
        if h == 0 and not any(buf[pos : pos + size]):
            return None  # a mode-0 header on nothing but zeros: space not written yet
        return (0, size) if size else None

    return parse


def check_amr(reader: Reader, head: bytes) -> Finding:
    """Judge an AMR file: the chain of frames (sizes by mode) must end at the end of file."""
    magic = next(m for m in AMR_MAGIC if head.startswith(m))
    label, sizes = AMR_MAGIC[magic]
    window = AMR_WHOLE_FILE if reader.size <= AMR_WHOLE_FILE else 64 * 1024
    fmt = FrameFormat(label, _amr_parser(sizes), 1, window, 48)
    walk = find_walk(fmt, reader, len(magic), reader.size)
    if reader.size == len(magic):
        return incomplete(f"{label}: the file has a header but no frames yet")
    return judge_walk(fmt, reader, walk, reader.size, "")


# --- MPEG transport stream (188-byte packets; 192 for M2TS with a 4-byte timestamp) --------


def sniff_ts(head: bytes) -> str | None:
    """``mpegts`` when sync bytes 0x47 recur every 188 (or 192/204) bytes in ``head``."""
    return "mpegts" if _ts_layout(head) else None


def _ts_layout(head: bytes) -> tuple[int, int] | None:
    """(packet size, offset of the sync byte in a packet) from the first packets."""
    for size, lead in ((188, 0), (192, 4), (204, 0)):
        packets = min(5, (len(head) - lead) // size)
        if packets >= 2 and all(head[lead + i * size] == 0x47 for i in range(packets)):
            return size, lead
    return None


def check_ts(reader: Reader, head: bytes) -> Finding:
    """Judge MPEG-TS/M2TS: whole packets to the end, each last one starting with 0x47."""
    layout = _ts_layout(head)
    if layout is None:
        return unknown("MPEG-TS: packet size not recognised")
    size, lead = layout
    label = "M2TS" if size == 192 else "MPEG-TS"
    extra = reader.size % size
    if extra:
        return incomplete(
            f"{label}: the file ends {n(extra)} bytes into a {size}-byte packet at "
            f"{n(reader.size - extra)}"
        )
    count = min(8, reader.size // size)
    start, tail = reader.tail(count * size)
    for i in range(count):
        if tail[i * size + lead] != 0x47:
            return incomplete(f"{label}: no sync byte 0x47 at packet {n(start + i * size)}")
    return complete(
        f"{label}: {n(reader.size // size)} whole {size}-byte packets, the last ones in sync "
        "(a stream cut at a packet boundary looks the same)",
        conclusive=False,
    )  # fmt: skip
