"""A job as the ledger returns it, and how its values map onto SQLite columns.

Paths are stored as the bytes of ``os.fsencode(rel_path)`` so names that are not UTF-8
survive; the API takes and returns ``str`` (``os.fsdecode``, i.e. surrogateescape). Inodes
are unsigned 64-bit, SQLite integers signed: the top half wraps (bijectively).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import NamedTuple

from daemon.version import Fingerprint

STATES = ("queued", "running", "done", "failed", "superseded", "gone", "incomplete", "skipped")
#: States in which a version counts as known: it is never queued again (a new version of
#: the file is: a copy that completes, a replaced file).
KNOWN_STATES = ("queued", "running", "done", "failed", "incomplete", "skipped")
#: States that end a version's story (until ``whisperd retry`` or a new version).
FINAL_STATES = ("done", "failed", "superseded", "gone", "skipped")


@dataclass(frozen=True)
class Job:
    """One row of the ledger."""

    id: int
    path: str
    fingerprint: Fingerprint
    state: str
    attempts: int
    not_before: float
    enqueued_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    worker: str | None
    model: str
    settings: str  # JSON text
    outputs: tuple[str, ...]
    audio_seconds: float | None
    processing_seconds: float | None
    language: str | None
    progress: float
    last_error: str | None
    error_kind: str | None
    crashes: int = 0  # times the service stopped while this job ran
    staged: str | None = None  # JSON: outputs written, not yet published (two-phase commit)
    source_action: str | None = None  # on_success action still to do: move | delete

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """Build from a ``SELECT *`` row."""
        return cls(
            id=row["id"],
            path=os.fsdecode(row["path"]),
            fingerprint=Fingerprint(row["size"], row["mtime_ns"], inode_from_db(row["inode"])),
            state=row["state"],
            attempts=row["attempts"],
            not_before=row["not_before"],
            enqueued_at=row["enqueued_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            updated_at=row["updated_at"],
            worker=row["worker"],
            model=row["model"],
            settings=row["settings"],
            outputs=tuple(json.loads(row["outputs"])),
            audio_seconds=row["audio_seconds"],
            processing_seconds=row["processing_seconds"],
            language=row["language"],
            progress=row["progress"],
            last_error=row["last_error"],
            error_kind=row["error_kind"],
            crashes=row["crashes"],
            staged=row["staged"],
            source_action=row["source_action"],
        )


class Brief(NamedTuple):
    """A job in brief: what a summary counts, without the wide columns (settings, outputs,
    errors); :meth:`~daemon.queue.interface.JobStore.jobs` fetches the rest by id."""

    id: int
    path: str
    state: str
    enqueued_at: float
    started_at: float | None
    finished_at: float | None
    audio_seconds: float | None
    processing_seconds: float | None
    model: str


def inode_to_db(inode: int | None) -> int | None:
    """Inodes are unsigned 64-bit, SQLite integers signed: wrap the top half (bijective)."""
    return inode - (1 << 64) if inode is not None and inode >= (1 << 63) else inode


def inode_from_db(value: int | None) -> int | None:
    return value + (1 << 64) if value is not None and value < 0 else value


def version_key(path: str, fp: Fingerprint) -> tuple[bytes, int, int, int | None]:
    return (os.fsencode(path), fp.size, fp.mtime_ns, inode_to_db(fp.inode))


def path_filter(folder: str) -> tuple[str, list[bytes]]:
    """SQL and parameters matching ``folder`` itself or anything below it ('' = all); SQL
    that both backends read."""
    raw = os.fsencode(folder).rstrip(b"/")
    if raw in (b"", b"."):
        return "1 = 1", []
    # Everything below 'a/b' sorts between 'a/b/' and 'a/b0' ('0' follows '/'): uses the index.
    return "(path = ? OR (path >= ? AND path < ?))", [raw, raw + b"/", raw + b"0"]
