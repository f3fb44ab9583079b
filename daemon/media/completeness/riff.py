"""WAV, RF64/BW64 and AIFF/AIFF-C: chunk sizes against the file size.

Both are a header (``RIFF``/``RF64``/``BW64`` little-endian, ``FORM`` big-endian) followed by
chunks of (id, size, payload, pad byte to an even size). The file is complete when every
chunk, the audio chunk (``data``/``SSND``) included, ends inside the file and the form's own
size (RF64: the 64-bit one in ``ds64``) does not reach past it.

Streamed WAV/AIFF (a writer that could not seek back leaves the sizes as 0xFFFFFFFF,
0x7FFFFFFF or 0): the audio runs to the end of the file, so only its frame alignment can be
judged: a partial last frame is ``incomplete``; whole frames are ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.media.completeness.base import Finding, Reader, complete, incomplete, n, unknown

STREAMED_SIZES = frozenset({0, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000})
MAX_CHUNKS = 4096


@dataclass
class _Form:
    name: str  # "WAV", "RF64", "AIFF"
    big_endian: bool
    declared_end: int | None  # offset where the form says the file ends; None: streamed
    audio_id: bytes  # b"data" or b"SSND"
    block_align: int = 0  # bytes per sample frame, from fmt/COMM
    ds64_data: int | None = None


def _u32(b: bytes, big: bool) -> int:
    return int.from_bytes(b[:4], "big" if big else "little")


def _parse_format_chunk(form: _Form, cid: bytes, payload: bytes) -> None:
    """Note the frame size (fmt/COMM) and RF64 sizes (ds64) from a chunk's first bytes."""
    if cid == b"fmt " and len(payload) >= 14:
        form.block_align = int.from_bytes(payload[12:14], "little")
    elif cid == b"COMM" and len(payload) >= 8:
        channels = int.from_bytes(payload[0:2], "big")
        bits = int.from_bytes(payload[6:8], "big")
        form.block_align = channels * ((bits + 7) // 8)
    elif cid == b"ds64" and len(payload) >= 16:
        form.declared_end = int.from_bytes(payload[0:8], "little") + 8
        form.ds64_data = int.from_bytes(payload[8:16], "little")


def _open_form(head: bytes) -> _Form:
    magic = head[:4]
    big = magic == b"FORM"
    declared = _u32(head[4:8], big)
    name = "AIFF" if big else ("WAV" if magic == b"RIFF" else magic.decode())
    end = None if declared in STREAMED_SIZES else declared + 8
    return _Form(name, big, end, b"SSND" if big else b"data")


def check_riff(reader: Reader, head: bytes) -> Finding:
    """Judge a WAV/RF64/BW64/AIFF/AIFF-C file; ``head`` holds its first bytes."""
    form = _open_form(head)
    pos, audio = 12, None
    for _ in range(MAX_CHUNKS):
        if pos + 8 > reader.size:
            return _after_chunks(form, reader, pos, audio)
        header = reader.read(pos, 8)
        cid, size = header[:4], _u32(header[4:8], form.big_endian)
        if not all(32 <= c < 127 for c in cid):
            what = "zero bytes" if cid == b"\0\0\0\0" else f"bytes {cid.hex()}"
            return _bad_chunk(form, pos, what, audio)
        if cid in (b"fmt ", b"COMM", b"ds64"):
            _parse_format_chunk(form, cid, reader.read(pos + 8, min(size, 64)))
        if cid == form.audio_id:
            if form.ds64_data is not None and size == 0xFFFFFFFF:
                size = form.ds64_data
            audio = pos + 8
            if size in STREAMED_SIZES and (size > 0 or form.declared_end is None):
                return _streamed(form, reader, audio, size)
        end = pos + 8 + size
        if end > reader.size:
            kind = "audio" if cid == form.audio_id else f"'{cid.decode()}' chunk"
            return incomplete(
                f"{form.name}: {kind} at {n(pos)} declares {n(size)} bytes but the file ends "
                f"after {n(reader.size - pos - 8)} of them ({n(end - reader.size)} bytes short)"
            )
        pos = end + (size & 1)
    return unknown(f"{form.name}: more than {MAX_CHUNKS} chunks")


def _bad_chunk(form: _Form, pos: int, what: str, audio: int | None) -> Finding:
    if form.declared_end is not None and pos < form.declared_end:
        return incomplete(f"{form.name}: {what} at {n(pos)} where a chunk header belongs")
    if audio is None:
        return incomplete(f"{form.name}: no audio chunk before {what} at {n(pos)}")
    return complete(
        f"{form.name}: all chunks end inside the file; {what} after the form's end at {n(pos)}",
        conclusive=True, pcm_from=audio,
    )  # fmt: skip


def _streamed(form: _Form, reader: Reader, audio: int, size: int) -> Finding:
    """Sizes never filled in: the audio runs to the end; judge the frame alignment."""
    have = reader.size - audio - (8 if form.big_endian else 0)  # SSND: offset + block size
    align = form.block_align
    if align and have % align:
        return incomplete(
            f"{form.name} written as a stream (sizes left as 0x{size:X}): {n(have)} bytes of "
            f"audio is not a whole number of {align}-byte frames"
        )
    return Finding(
        "unknown",
        f"{form.name} written as a stream (sizes left as 0x{size:X}): {n(have)} bytes of audio "
        "in whole frames, but nothing says where it should end",
        pcm_from=audio,
    )


def _after_chunks(form: _Form, reader: Reader, pos: int, audio: int | None) -> Finding:
    if audio is None:
        return incomplete(
            f"{form.name}: the file ends after {n(reader.size)} bytes before any audio chunk"
        )
    declared = form.declared_end
    if declared is not None and declared > reader.size:
        return incomplete(
            f"{form.name}: the header declares {n(declared)} bytes but the file ends after "
            f"{n(reader.size)}"
        )
    if pos < reader.size and (declared is None or pos < declared):
        return incomplete(
            f"{form.name}: {n(reader.size - pos)} bytes after the last chunk at {n(pos)} "
            "are too few for a chunk header"
        )
    return complete(
        f"{form.name}: every chunk, the audio included, ends inside the {n(reader.size)}-byte file",
        conclusive=True, pcm_from=audio,
    )  # fmt: skip
