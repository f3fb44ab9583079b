"""Matroska / WebM: EBML header, Segment size, and a walk of the elements to the end.

An element is an ID (1–4 bytes, length marked by the first byte's leading zeros), a size
(1–8 bytes, same marking; all value bits set = "unknown", used by live writers for the
Segment and sometimes for Clusters) and a payload. The walk seeks over every element of
known size, reading one 12-byte header each, and steps *into* a Cluster of unknown size,
whose children (blocks) follow one another until the next top-level element or the end.

Complete when the walk lands exactly on the end of the Segment (known size: conclusive) or
of the file (unknown size: not conclusive, a live file is whole at every block boundary).
When a Cluster of unknown size is met far from the end, walking its blocks would read the
whole file, so the walk instead re-synchronises on element boundaries in the last 256 KiB.
"""

from __future__ import annotations

from daemon.media.completeness.base import Finding, Reader, complete, incomplete, n, unknown

EBML_ID, SEGMENT_ID, CLUSTER_ID, VOID_ID = 0x1A45DFA3, 0x18538067, 0x1F43B675, 0xEC
TOP_LEVEL = {
    0x114D9B74: "SeekHead", 0x1549A966: "Info", 0x1654AE6B: "Tracks", CLUSTER_ID: "Cluster",
    0x1C53BB6B: "Cues", 0x1941A469: "Attachments", 0x1043A770: "Chapters", 0x1254C367: "Tags",
    VOID_ID: "Void", 0xBF: "CRC-32",
}  # fmt: skip
CLUSTER_CHILDREN = {
    0xE7: "Timestamp", 0x5854: "SilentTracks", 0xA7: "Position", 0xAB: "PrevSize",
    0xA3: "SimpleBlock", 0xA0: "BlockGroup", 0xAF: "EncryptedBlock",
}  # fmt: skip
NAMES = {**TOP_LEVEL, **CLUSTER_CHILDREN}
BLOCKS = (0xA3, 0xA0)
MAX_ELEMENTS = 500_000
RESYNC_WINDOW = 256 * 1024
RESYNC_CHAIN = 6  # consecutive valid elements that prove a re-synchronised position


def read_vint(buf: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool] | None:
    """(value, length, is_unknown) of the EBML variable-size integer at ``buf[pos]``."""
    if pos >= len(buf) or buf[pos] == 0:
        return None
    length = 9 - buf[pos].bit_length()
    if pos + length > len(buf):
        return None
    value = int.from_bytes(buf[pos : pos + length], "big")
    all_ones = (1 << (7 * length)) - 1
    if keep_marker:
        return value, length, False
    value &= all_ones
    return value, length, value == all_ones


def _header(buf: bytes, pos: int = 0) -> tuple[int, int, int | None] | None:
    """(id, header length, size or None when unknown) of an element at ``buf[pos]``."""
    eid = read_vint(buf, pos, keep_marker=True)
    if eid is None or eid[1] > 4:
        return None
    size = read_vint(buf, pos + eid[1], keep_marker=False)
    if size is None:
        return None
    return eid[0], eid[1] + size[1], None if size[2] else size[0]


def sniff(head: bytes) -> str | None:
    """``webm`` or ``matroska`` when ``head`` starts with an EBML header."""
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    return "webm" if b"\x42\x82\x84webm" in head[:64] else "matroska"


def check_matroska(reader: Reader, head: bytes, name: str = "matroska") -> Finding:
    """Judge a Matroska/WebM file: Segment size, then every element to the end."""
    label = "WebM" if name == "webm" else "Matroska"
    ebml = _header(head)
    if ebml is None or ebml[2] is None:
        return incomplete(f"{label}: the EBML header is cut off")
    seg_pos = ebml[1] + ebml[2]
    seg = _header(reader.read(seg_pos, 12))
    if seg is None or seg[0] != SEGMENT_ID:
        if seg_pos + 12 > reader.size:
            return incomplete(
                f"{label}: the file ends after {n(reader.size)} bytes, before the Segment"
            )
        return unknown(f"{label}: no Segment after the EBML header")
    data, seg_size = seg_pos + seg[1], seg[2]
    if seg_size is not None and data + seg_size > reader.size:
        return incomplete(
            f"{label}: Segment declares {n(seg_size)} bytes but the file ends after "
            f"{n(reader.size - data)} of them"
        )
    end = reader.size if seg_size is None else data + seg_size
    return _walk(reader, label, data, end, known=seg_size is not None)


def _walk(reader: Reader, label: str, pos: int, end: int, *, known: bool) -> Finding:
    """Walk elements from ``pos`` to ``end``; see the module docstring."""
    count, clusters, last = 0, 0, (0, pos)
    while pos < end:
        count += 1
        if count > MAX_ELEMENTS:
            return unknown(f"{label}: more than {n(MAX_ELEMENTS)} elements")
        hdr = _header(reader.read(pos, 12))
        if hdr is None or hdr[0] not in NAMES:
            return _bad_element(reader, label, pos, end)
        eid, hlen, size = hdr
        clusters += eid == CLUSTER_ID
        if size is None and eid == CLUSTER_ID:
            if end - pos > RESYNC_WINDOW and end == reader.size:
                return _resync(reader, label, known=known)
            pos, last = pos + hlen, (eid, pos)
            continue
        if size is None:
            return incomplete(f"{label}: {NAMES[eid]} at {n(pos)} has an unknown size")
        if pos + hlen + size > end:
            return incomplete(
                f"{label}: {NAMES[eid]} at {n(pos)} declares {n(size)} bytes but the "
                f"{'Segment' if known else 'file'} ends after {n(max(0, end - pos - hlen))} of them"
            )
        pos, last = pos + hlen + size, (eid, pos)
    return _whole(label, clusters, last, known)


def _bad_element(reader: Reader, label: str, pos: int, end: int) -> Finding:
    raw = reader.read(pos, 4)
    if raw.rstrip(b"\0") == b"":
        return incomplete(f"{label}: zero bytes at {n(pos)} where an element belongs")
    if end - pos < 12 and _header(reader.read(pos, end - pos)) is None:
        return incomplete(
            f"{label}: the element header at {n(pos)} is cut off by the end of the file"
        )
    return incomplete(f"{label}: bytes {raw.hex()} at {n(pos)} are not a Matroska element")


def _whole(label: str, clusters: int, last: tuple[int, int], known: bool) -> Finding:
    eid, pos = last
    padding = pos if eid == VOID_ID else None
    if known:
        return complete(
            f"{label}: the Segment and all {clusters} clusters end inside the file",
            conclusive=True, padding_from=padding,
        )  # fmt: skip
    return complete(
        f"{label}: Segment of unknown size (written live); every element up to the end "
        f"is whole ({clusters} clusters), but a live file is whole at every block boundary",
        conclusive=False, padding_from=padding,
    )  # fmt: skip


def _chain(buf: bytes, start: int) -> tuple[int, int, int | None] | None:
    """From ``buf[start]``: (elements walked, where the walk stopped, declared end if past).

    None when an invalid element is met: ``start`` is not an element boundary.
    """
    pos, count = start, 0
    while pos < len(buf):
        hdr = _header(buf, pos)
        if hdr is None:
            return (count, pos, None) if len(buf) - pos < 12 and count else None
        eid, hlen, size = hdr
        if eid not in NAMES or (eid in BLOCKS and size is not None and size < 4):
            return None
        if eid == 0xA3 and (pos + hlen >= len(buf) or not buf[pos + hlen] & 0x80):
            return None  # a SimpleBlock starts with a 1-byte track number (0x81…)
        count += 1
        if size is None:
            if eid != CLUSTER_ID:
                return None
            pos += hlen
            continue
        if pos + hlen + size > len(buf):
            return count, pos, pos + hlen + size
        pos += hlen + size
    return count, pos, None


def _resync(reader: Reader, label: str, *, known: bool) -> Finding:
    """Find element boundaries in the last 256 KiB and walk them to the end of the file."""
    start, buf = reader.tail(RESYNC_WINDOW)
    for offset in range(len(buf)):
        if buf[offset] not in (0xA3, 0xA0, 0xE7, 0x1F):
            continue
        found = _chain(buf, offset)
        if found is None or found[0] < RESYNC_CHAIN:
            continue
        _, stop, declared = found
        if declared is not None:
            return incomplete(
                f"{label}: the element at {n(start + stop)} (in a cluster of unknown size) "
                f"declares {n(declared - stop)} bytes but the file ends after {n(len(buf) - stop)}"
            )
        if stop != len(buf):
            return incomplete(f"{label}: the element header at {n(start + stop)} is cut off")
        return complete(
            f"{label}: clusters of unknown size; the blocks in the last {n(len(buf))} bytes "
            "are whole" + ("" if known else ", but a live file is whole at every block boundary"),
            conclusive=known,
        )  # fmt: skip
    return unknown(f"{label}: no element boundaries found in the last {n(len(buf))} bytes")
