"""MP3 (MPEG-1/2/2.5 layer I–III) and ADTS AAC: frame headers, Xing/VBRI totals, checks.

Both may start with an ID3v2 tag and end with ID3v1/APEv2/Lyrics3 tags; the audio between
is judged by :mod:`.frames`. An MP3 whose first frame holds a Xing/Info or VBRI header with
a byte count is judged against that count too, which makes the verdict conclusive (writers
fill it in when they finish; ffmpeg's ``-write_xing 0`` and most CBR encoders write none).
"""

from __future__ import annotations

from daemon.media.completeness.base import (
    Finding,
    Reader,
    complete,
    id3v2_size,
    incomplete,
    n,
    strip_trailing_tags,
)
from daemon.media.completeness.frames import FrameFormat, find_walk, judge_walk

_BITRATES = {  # kbit/s by (version is MPEG-1, layer); index 0 = free format, 15 = invalid
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
ADTS_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)


def parse_mp3(buf: bytes, pos: int) -> tuple[object, int] | None:
    """(key, frame length) of the MPEG audio frame header at ``buf[pos]``, or None."""
    if pos + 4 > len(buf) or buf[pos] != 0xFF or buf[pos + 1] & 0xE0 != 0xE0:
        return None
    b1, b2, b3 = buf[pos + 1], buf[pos + 2], buf[pos + 3]
    version, layer_bits = (b1 >> 3) & 3, (b1 >> 1) & 3
    br_idx, sr_idx = b2 >> 4, (b2 >> 2) & 3
    if version == 1 or layer_bits == 0 or br_idx in (0, 15) or sr_idx == 3 or b3 & 3 == 2:
        return None
    layer = 4 - layer_bits
    rate = _RATES[version][sr_idx]
    bitrate = _BITRATES[(version == 3, layer)][br_idx] * 1000
    pad = (b2 >> 1) & 1
    if layer == 1:
        length = (12 * bitrate // rate + pad) * 4
    else:
        factor = 72 if (layer == 3 and version != 3) else 144
        length = factor * bitrate // rate + pad
    return (version, layer, sr_idx), length


def parse_adts(buf: bytes, pos: int) -> tuple[object, int] | None:
    """(key, frame length) of the ADTS header at ``buf[pos]``, or None."""
    if pos + 7 > len(buf) or buf[pos] != 0xFF or buf[pos + 1] & 0xF6 != 0xF0:
        return None
    b2, b3, b4, b5 = buf[pos + 2 : pos + 6]
    sf_idx = (b2 >> 2) & 0x0F
    length = ((b3 & 0x03) << 11) | (b4 << 3) | (b5 >> 5)
    header = 7 if buf[pos + 1] & 1 else 9
    if sf_idx >= len(ADTS_RATES) or length < header:
        return None
    return (buf[pos + 1] & 0xFE, b2 & 0xFC), length


MP3 = FrameFormat("MP3", parse_mp3, 4, 16 * 1024, 3, 0xFF)
ADTS = FrameFormat("ADTS", parse_adts, 7, 64 * 1024, 3, 0xFF)


def sniff(audio: bytes, *, tagged: bool = False) -> str | None:
    """``mp3`` or ``adts`` from the first frame in ``audio`` (the bytes after any ID3v2 tag).

    ``tagged``: an ID3v2 tag came first, so an unrecognised start still means MP3.
    """
    if parse_adts(audio, 0):
        return "adts"
    first = parse_mp3(audio, 0)
    if first:
        return "mp3" if first[1] + 4 > len(audio) or parse_mp3(audio, first[1]) else None
    return "mp3" if tagged else None


def _xing_bytes(reader: Reader, first: int) -> tuple[str, int] | None:
    """("Xing"/"Info"/"VBRI", byte count) from the first frame's header, when it has one."""
    frame = reader.read(first, 200)
    parsed = parse_mp3(frame, 0)
    if parsed is None:
        return None
    version = parsed[0][0]  # type: ignore[index]
    mono = frame[3] >> 6 == 3
    side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
    tag = frame[4 + side : 8 + side]
    if tag in (b"Xing", b"Info"):
        flags = int.from_bytes(frame[8 + side : 12 + side], "big")
        if flags & 2:
            at = 12 + side + (4 if flags & 1 else 0)
            return tag.decode(), int.from_bytes(frame[at : at + 4], "big")
    if frame[36:40] == b"VBRI":
        return "VBRI", int.from_bytes(frame[46:50], "big")
    return None


def _audio_bounds(reader: Reader, head: bytes) -> tuple[int, int, str]:
    start = id3v2_size(head)
    end, tags = strip_trailing_tags(reader, start, reader.size)
    return start, end, tags


def check_mp3(reader: Reader, head: bytes) -> Finding:
    """Judge an MP3: Xing/VBRI byte count when present, and the last frame whole."""
    start, end, tags = _audio_bounds(reader, head)
    if start >= reader.size:
        return incomplete(f"MP3: the file ends inside its ID3v2 tag ({n(start)} bytes declared)")
    first = reader.read(start, 4096)
    first_frame = start + next((i for i in range(len(first)) if parse_mp3(first, i)), 0)
    total = _xing_bytes(reader, first_frame)
    if total and total[1] == 0:
        return incomplete(
            f"MP3: the {total[0]} header's byte count is still zero (a writer fills it in "
            "when it finishes)"
        )
    if total and first_frame + total[1] > end:
        return incomplete(
            f"MP3: the {total[0]} header declares {n(total[1])} bytes of audio but the file "
            f"ends after {n(end - first_frame)}"
        )
    found = judge_walk(MP3, reader, find_walk(MP3, reader, first_frame, end), end, tags)
    if found.state == "complete" and total and first_frame + total[1] == end:
        return complete(
            f"MP3: the {total[0]} header's byte count ({n(total[1])}) matches the audio, "
            f"the last frame ends at {n(end)}{tags}",
            conclusive=True,
        )  # fmt: skip
    return found


def check_adts(reader: Reader, head: bytes) -> Finding:
    """Judge an ADTS AAC stream: the last frame whole."""
    start, end, tags = _audio_bounds(reader, head)
    return judge_walk(ADTS, reader, find_walk(ADTS, reader, start, end), end, tags)
