"""Completeness: is a media file whole? Judged from its own structure, with bounded reads.

Owns :func:`check` (a path → :class:`Verdict`), :func:`sniff` and :data:`ZERO_TAIL`; one
module per format family: :mod:`.riff` (WAV, RF64, AIFF), :mod:`.isobmff` (MP4, MOV, M4A,
3GP), :mod:`.ebml` (Matroska, WebM), :mod:`.ogg`, :mod:`.flac`, :mod:`.mpeg_audio` (MP3,
ADTS) and :mod:`.frames` (self-delimiting frames: the MP3/ADTS walk, AMR, MPEG-TS), on the
counted reader of :mod:`.base`.

May import: nothing of whisperd besides :mod:`daemon.errors` and :mod:`daemon.config`
(it needs neither today); the standard library and structlog only, no PyAV.

How: sniff the format from the first 64 KiB (after an ID3v2 tag for MP3/ADTS/FLAC), run the
format's checker, then the zero-tail test: when the last 64 KiB are all zero bytes and the
format cannot end so (everything but PCM samples and structural padding), the file is a
preallocated one still being filled in (Windows Explorer over SMB, download managers,
``fallocate``) and is incomplete.

What intake does with a verdict, together with the writer probe
(:mod:`daemon.intake.readiness`): ``incomplete`` — the file is recorded *incomplete* (shown by
``whisperd status``) once it stops changing, taken again when it changes, failed after
``watch.incomplete_timeout``; ``complete`` and ``conclusive`` (the structure says where it
ends) — ready as soon as nobody writes it; ``complete`` but framing only (CBR MP3, ADTS,
MPEG-TS, AMR, fragmented MP4 without ``mfra``, live Matroska, FLAC from a pipe: a stream cut
at a frame boundary looks the same) and ``unknown`` — the stability window decides, unless
its writer was seen closing it.

Cost: the head and tail windows (64 KiB each; up to 256 KiB for some tails) plus one small
read per MP4 box or Matroska element walked. :attr:`Verdict.bytes_read` reports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import structlog

from daemon.media.completeness import ebml, flac, frames, isobmff, mpeg_audio, ogg, riff
from daemon.media.completeness.base import (
    TAIL_WINDOW,
    Finding,
    Reader,
    Verdict,
    id3v2_size,
    n,
    zero_run_at_end,
)

__all__ = ["LABELS", "ZERO_TAIL", "Verdict", "check", "sniff"]

log = structlog.get_logger(__name__)

ZERO_TAIL = TAIL_WINDOW  # this many zero bytes at the end mark a preallocated file

LABELS = {
    "wav": "WAV", "rf64": "RF64", "aiff": "AIFF", "mp4": "MP4", "mov": "MOV", "m4a": "M4A",
    "3gp": "3GP", "matroska": "Matroska", "webm": "WebM", "ogg": "Ogg", "flac": "FLAC",
    "mp3": "MP3", "adts": "ADTS", "mpegts": "MPEG-TS", "amr": "AMR",
}  # fmt: skip

Checker = Callable[[Reader, bytes], Finding]
_CHECKERS: dict[str, Checker] = {
    "wav": riff.check_riff, "rf64": riff.check_riff, "aiff": riff.check_riff,
    "ogg": ogg.check_ogg, "flac": flac.check_flac, "mp3": mpeg_audio.check_mp3,
    "adts": mpeg_audio.check_adts, "mpegts": frames.check_ts, "amr": frames.check_amr,
}  # fmt: skip
for _name in ("mp4", "mov", "m4a", "3gp"):
    _CHECKERS[_name] = lambda r, h, _n=_name: isobmff.check_mp4(r, h, _n)
for _name in ("matroska", "webm"):
    _CHECKERS[_name] = lambda r, h, _n=_name: ebml.check_matroska(r, h, _n)


def sniff(head: bytes, after_id3: bytes = b"") -> str | None:
    """The format of a file starting with ``head``; ``after_id3``: the bytes after its ID3v2 tag.

    One of the keys of :data:`LABELS`, or None when the format is not one this package judges.
    """
    if head[8:12] == b"WAVE" and head[:4] in (b"RIFF", b"RF64", b"BW64"):
        return "wav" if head[:4] == b"RIFF" else "rf64"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"OggS":
        return "ogg"
    for probe in (isobmff.sniff, ebml.sniff, frames.sniff_amr, frames.sniff_ts):
        found = probe(head)
        if found:
            return found
    tagged = id3v2_size(head) > 0
    rest = after_id3 if tagged else head
    if rest[:4] == b"fLaC":
        return "flac"
    return mpeg_audio.sniff(rest, tagged=tagged)


def check(path: str | os.PathLike[str]) -> Verdict:
    """Judge whether the media file at ``path`` is complete; see the package docstring.

    Raises FileNotFoundError when the file is gone; any other read error (a directory, no
    permission, an I/O error) gives ``unknown``, and so does a checker that fails: a bug
    here must never stop intake.
    """
    try:
        with Reader(path) as reader:
            verdict = _check(reader)
    except FileNotFoundError:
        raise
    except OSError as err:
        verdict = Verdict("unknown", "unknown", f"cannot read the file: {err}")
    log.debug("completeness", path=os.fspath(path), state=verdict.state, format=verdict.format,
              reason=verdict.reason, bytes_read=verdict.bytes_read)  # fmt: skip
    return verdict


def _check(reader: Reader) -> Verdict:
    if reader.size == 0:
        return _verdict(reader, "unknown", Finding("unknown", "the file is empty"))
    head = reader.read(0, 64 * 1024)
    reader.tail()  # the zero-tail test needs it; the checkers' tail windows start from it
    skip = id3v2_size(head)
    after = reader.read(skip, 4096) if skip else b""
    fmt = sniff(head, after)
    if fmt is None:
        return _verdict(reader, "unknown", _unknown_format(reader, head))
    try:
        finding = _CHECKERS[fmt](reader, head)
    except Exception as err:  # a checker bug must not stop intake: fall back to stability
        log.warning("completeness checker failed", format=fmt, exc_info=True)
        finding = Finding("unknown", f"{LABELS[fmt]}: checker failed ({type(err).__name__}: {err})")
    return _verdict(reader, fmt, _zero_tail(reader, fmt, finding))


def _unknown_format(reader: Reader, head: bytes) -> Finding:
    _, tail = reader.tail()
    if head.rstrip(b"\0") == b"" and tail.rstrip(b"\0") == b"" and len(head) >= 4096:
        return Finding(
            "incomplete",
            f"the first {n(len(head))} and the last {n(len(tail))} bytes are all zero: space "
            "preallocated by a writer that has not written the header yet",
            True,
        )
    return Finding("unknown", f"format not recognised (starts with {head[:8].hex()})")


def _zero_tail(reader: Reader, fmt: str, finding: Finding) -> Finding:
    """Apply the zero-tail test to a checker's finding; see the package docstring."""
    start, tail = reader.tail()
    if len(tail) < ZERO_TAIL or zero_run_at_end(tail) < ZERO_TAIL:
        return finding
    label = LABELS[fmt]
    if finding.padding_from is not None and finding.padding_from <= start:
        return finding
    if finding.pcm_from is not None and finding.pcm_from <= start:
        if finding.state != "complete":
            return finding
        return Finding(
            "unknown",
            f"{label}: every chunk ends inside the file, but the last {n(ZERO_TAIL)} bytes are "
            "all zero: digital silence, or space preallocated by a copy still running",
        )
    return Finding(
        "incomplete",
        f"{label}: the last {n(ZERO_TAIL)} bytes are all zero (space preallocated by a writer "
        f"that has not reached the end); {label} data cannot end in zero bytes",
        True,
    )


def _verdict(reader: Reader, fmt: str, finding: Finding) -> Verdict:
    conclusive = (
        finding.conclusive if finding.state == "complete" else finding.state == "incomplete"
    )
    return Verdict(finding.state, fmt, finding.reason, conclusive, reader.bytes_read, reader.reads)
