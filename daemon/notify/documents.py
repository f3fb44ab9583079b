"""The notification documents: the JSON a webhook receives, and its text for people.

A document is built once, when the event happens, and stored as UTF-8 JSON bytes; every
target sends (webhooks) or renders (Apprise: :func:`render_text`) those same bytes, also
after a restart. Common fields::

    {"event": "done" | "failed" | "folder_idle", "id": <event uuid, same for every target>,
     "delivery": <delivery uuid, one per target; also the X-Whisperd-Delivery header>,
     "created_at": "2024-05-01T12:00:00Z", "whisperd": "<version>", ...}

``done``/``failed`` add: ``file`` (inbox-relative), ``folder``, ``state``, ``outputs``
(outbox-relative), ``language``, ``audio_seconds``, ``processing_seconds``, ``error``.
``folder_idle`` adds: ``folder``, ``files``, ``done``, ``failed``, ``skipped``,
``started_at``, ``finished_at``, ``failures`` ([{file, error}], at most 20) and
``failures_omitted``.

File names that are not valid UTF-8 (the ledger keeps them as surrogate-escaped ``str``)
are written with each undecodable byte as the four characters ``\\xNN``: the JSON stays
valid UTF-8, the name stays recognisable, and no byte is lost silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from daemon.notify.idle import BatchSummary


class JobView(Protocol):
    """What a file event needs from a job (the ledger's ``Job`` has all of it)."""

    id: int
    path: str
    state: str
    outputs: Sequence[str]
    language: str | None
    audio_seconds: float | None
    processing_seconds: float | None
    last_error: str | None


def safe_text(text: str) -> str:
    """``text`` as valid Unicode: undecodable bytes (surrogate escapes) become ``\\xNN``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def clean(value: Any) -> Any:
    """A JSON-safe copy: strings made :func:`safe_text`, non-finite floats None."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {safe_text(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def encode(document: Mapping[str, Any]) -> bytes:
    """The document as compact UTF-8 JSON (the bytes that are stored, sent and signed)."""
    text = json.dumps(clean(document), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def iso(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC with a Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def file_payload(job: JobView, folder: str) -> dict[str, Any]:
    """The fields of a ``done``/``failed`` event for ``job``."""
    return {
        "file": job.path,
        "folder": folder,
        "state": job.state,
        "outputs": list(job.outputs),
        "language": job.language,
        "audio_seconds": _rounded(job.audio_seconds),
        "processing_seconds": _rounded(job.processing_seconds),
        "error": job.last_error if job.state == "failed" else None,
    }


def folder_idle_payload(summary: BatchSummary) -> dict[str, Any]:
    """The fields of a ``folder_idle`` event."""
    return {
        "folder": summary.folder,
        "files": summary.files,
        "done": summary.done,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "started_at": iso(summary.started_at),
        "finished_at": iso(summary.finished_at),
        "failures": [{"file": f, "error": e} for f, e in summary.failures],
        "failures_omitted": summary.failures_omitted,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- text for people (Apprise) ------------------------------------------------------------


def render_text(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    """(title, body, notify type: success|failure|warning|info) of a stored document."""
    event = doc.get("event")
    if event == "done":
        return _done_text(doc)
    if event == "failed":
        title = f"Transcription failed: {doc.get('file')}"
        return title, f"{doc.get('file')}: {doc.get('error') or 'unknown error'}", "failure"
    if event == "folder_idle":
        return _idle_text(doc)
    return f"whisperd: {event}", json.dumps(doc, ensure_ascii=False, indent=1), "info"


def _done_text(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    facts = [doc.get("language") or "language unknown"]
    if doc.get("audio_seconds") is not None:
        facts.append(f"{_duration(doc['audio_seconds'])} of audio")
    if doc.get("processing_seconds") is not None:
        facts.append(f"took {_duration(doc['processing_seconds'])}")
    lines = [f"{doc.get('file')} was transcribed ({', '.join(facts)})."]
    if doc.get("outputs"):
        lines.append("Outputs: " + ", ".join(doc["outputs"]))
    return f"Transcribed: {doc.get('file')}", "\n".join(lines), "success"


def _idle_text(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    folder = doc.get("folder")
    where = "the inbox" if folder == "." else folder
    files, failed = doc.get("files", 0), doc.get("failed", 0)
    noun = "file" if files == 1 else "files"
    counts = f"{doc.get('done', 0)} done, {failed} failed"
    if doc.get("skipped"):
        counts += f", {doc['skipped']} skipped (changed or removed before transcription)"
    lines = [f"Your {files} {noun} in {where} are finished: {counts}."]
    for failure in doc.get("failures", []):
        lines.append(f"- {failure.get('file')}: {failure.get('error')}")
    if doc.get("failures_omitted"):
        lines.append(f"- and {doc['failures_omitted']} more failures")
    title = f"{where}: {files} {noun} finished" + (f", {failed} failed" if failed else "")
    return title, "\n".join(lines), "warning" if failed else "success"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
