"""MP4 / MOV / M4A / 3GP (ISO base media): a walk over the top-level boxes.

Each box starts with a 32-bit size and a four-letter type; size 1 means a 64-bit size
follows, size 0 means "to the end of the file" (only the last box may say so). The walk
seeks from box to box, reading 16 bytes per box, so its cost grows with the number of boxes
(two per fragment in a fragmented file), never with the file size.

Complete when every box ends inside the file and, for a progressive file, both ``moov`` (the
index, which writers add last unless they rewrite the file for "faststart") and ``mdat`` are
there. A fragmented file (``mvex`` in ``moov``, then ``moof``/``mdat`` pairs) is complete when
its last fragment is whole; without an ``mfra`` index at the end that is not conclusive, as a
live fragmented file is valid at every fragment boundary.
"""

from __future__ import annotations

from daemon.media.completeness.base import Finding, Reader, complete, incomplete, n, unknown

TOP_LEVEL = frozenset(
    {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"sidx",
     b"moof", b"mfra", b"meta", b"uuid", b"pdin", b"prft", b"emsg", b"ssix", b"junk"}
)  # fmt: skip
SNIFF = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp"})
PADDING = frozenset({b"free", b"skip", b"wide", b"junk"})
MAX_BOXES = 500_000
BRAND_NAMES = {b"qt  ": "mov", b"M4A ": "m4a", b"M4B ": "m4a", b"3gp": "3gp", b"3g2": "3gp"}


def sniff(head: bytes) -> str | None:
    """``mp4``/``mov``/``m4a``/``3gp`` when ``head`` starts like an ISO media file."""
    if len(head) < 8 or head[4:8] not in SNIFF:
        return None
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        return BRAND_NAMES.get(brand, BRAND_NAMES.get(brand[:3], "mp4"))
    return "mov" if head[4:8] in (b"wide", b"pnot", b"mdat", b"moov") else "mp4"


def _box_type(raw: bytes) -> str:
    return raw.decode("latin-1") if all(32 <= c < 127 for c in raw) else raw.hex()


def walk(
    reader: Reader, start: int, end: int, limit: int
) -> tuple[list[tuple[bytes, int, int]], str]:
    """Boxes (type, offset, size) from ``start`` up to ``end``; a problem, or "" if none.

    The problem is a sentence saying where the structure breaks (a box past ``end``, zero
    bytes where a box header belongs, …); the boxes before it are still returned.
    """
    boxes: list[tuple[bytes, int, int]] = []
    pos = start
    while pos < end:
        if len(boxes) >= limit:
            return boxes, f"more than {n(limit)} boxes"
        if pos + 8 > end:
            return boxes, f"{n(end - pos)} bytes after the last box are too few for a box header"
        head = reader.read(pos, 16)
        size, btype, hlen = int.from_bytes(head[:4], "big"), head[4:8], 8
        if not all(32 <= c < 127 for c in btype):
            what = "zero bytes" if head[:8] == bytes(8) else f"bytes {head[:8].hex()}"
            return boxes, f"{what} at {n(pos)} where a box header belongs"
        if size == 1:
            if len(head) < 16:
                return (
                    boxes,
                    f"the 64-bit size of the {_box_type(btype)} box at {n(pos)} is cut off",
                )
            size, hlen = int.from_bytes(head[8:16], "big"), 16
        elif size == 0:
            size = end - pos
        if size < hlen:
            return boxes, f"{_box_type(btype)} box at {n(pos)} declares an impossible size {size}"
        if pos + size > end:
            return boxes, (
                f"{_box_type(btype)} box at {n(pos)} declares {n(size)} bytes but the file ends "
                f"after {n(end - pos)} of them"
            )
        boxes.append((btype, pos, size))
        pos += size
    return boxes, ""


def check_mp4(reader: Reader, head: bytes, name: str = "mp4") -> Finding:
    """Judge an ISO base media file (MP4, MOV, M4A, 3GP) by its top-level boxes."""
    label = name.upper()
    boxes, problem = walk(reader, 0, reader.size, MAX_BOXES)
    if problem.startswith("more than"):
        return unknown(f"{label}: {problem}")
    if problem:
        return incomplete(f"{label}: {problem}")
    types = [b[0] for b in boxes]
    if b"moov" not in types:
        listed = ", ".join(_box_type(t) for t in types[:6])
        return incomplete(
            f"{label}: no moov box (the index a writer adds when it finishes); boxes: {listed}"
        )
    last_type, last_pos, _ = boxes[-1]
    padding = last_pos + 8 if last_type in PADDING else None
    if b"moof" in types or _has_mvex(reader, boxes[types.index(b"moov")]):
        return _fragmented(label, boxes, padding)
    if b"mdat" not in types:
        return incomplete(f"{label}: a moov box but no media data (mdat) box")
    moov = boxes[types.index(b"moov")]
    where = "at the start (faststart)" if moov[1] < boxes[types.index(b"mdat")][1] else "at the end"
    mdat_bytes = sum(b[2] for b in boxes if b[0] == b"mdat")
    open_ended = reader.read(last_pos, 4) == bytes(4)  # size 0: "runs to the end of the file"
    note = f"; the last box ({_box_type(last_type)}) runs to whatever end" if open_ended else ""
    return complete(
        f"{label}: moov ({n(moov[2])} bytes, {where}) and mdat ({n(mdat_bytes)} bytes) end "
        f"inside the {n(reader.size)}-byte file{note}",
        conclusive=not open_ended, padding_from=padding,
    )  # fmt: skip


def _has_mvex(reader: Reader, moov: tuple[bytes, int, int]) -> bool:
    """True when the moov box holds an ``mvex`` box (the file is fragmented)."""
    _, pos, size = moov
    children, _ = walk(reader, pos + 8, pos + size, 256)
    return any(c[0] == b"mvex" for c in children)


def _fragmented(label: str, boxes: list[tuple[bytes, int, int]], padding: int | None) -> Finding:
    types = [b[0] for b in boxes]
    fragments = types.count(b"moof")
    body = [t for t in types if t not in PADDING and t not in (b"sidx", b"prft", b"emsg", b"styp")]
    if body and body[-1] == b"moof":
        last_moof = [b[1] for b in boxes if b[0] == b"moof"][-1]
        return incomplete(f"{label}: the last fragment's moof at {n(last_moof)} has no mdat yet")
    if b"mfra" in types:
        return complete(
            f"{label}: fragmented, {fragments} fragments whole and the mfra index written last",
            conclusive=True, padding_from=padding,
        )  # fmt: skip
    return complete(
        f"{label}: fragmented, all {fragments} fragments whole (no mfra index: a fragmented "
        "file being written is also whole at every fragment boundary)",
        conclusive=False, padding_from=padding,
    )  # fmt: skip
