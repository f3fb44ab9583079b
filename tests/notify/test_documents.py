"""The documents: valid UTF-8 JSON whatever the file names, and readable text for people."""

from __future__ import annotations

import json
import os

from daemon.notify.documents import encode, file_payload, folder_idle_payload, render_text
from daemon.notify.idle import BatchSummary
from tests.notify.conftest import FakeJob


def test_a_name_that_is_not_utf8_stays_recognisable_in_valid_json() -> None:
    name = os.fsdecode(b"clients/caf\xe9 \xff.mp3")  # as the ledger hands it over
    job = FakeJob(1, name, "failed", last_error=f"{name}: corrupt")
    body = encode(file_payload(job, "clients"))
    doc = json.loads(body.decode("utf-8"))  # strict UTF-8: no surrogates left
    assert doc["file"] == "clients/caf\\xe9 \\xff.mp3"
    assert doc["error"] == "clients/caf\\xe9 \\xff.mp3: corrupt"


def test_utf8_names_are_written_as_they_are() -> None:
    job = FakeJob(
        1,
        "clients/Überweisung 📞.mp3",
        "done",
        outputs=("clients/Überweisung 📞.txt",),
        language="de",
        audio_seconds=61.23456,
        processing_seconds=float("nan"),
    )
    doc = json.loads(encode(file_payload(job, "clients")))
    assert doc == {
        "file": "clients/Überweisung 📞.mp3",
        "folder": "clients",
        "state": "done",
        "outputs": ["clients/Überweisung 📞.txt"],
        "language": "de",
        "audio_seconds": 61.235,
        "processing_seconds": None,
        "error": None,
    }
    assert "Überweisung".encode() in encode(file_payload(job, "clients"))


def test_the_folder_summary_reads_like_a_sentence() -> None:
    summary = BatchSummary(
        "clients/acme",
        0.0,
        600.0,
        done=298,
        failed=2,
        skipped=0,
        failures=(("clients/acme/a.mp3", "no audio stream"), ("clients/acme/b.mp3", "corrupt")),
        failures_omitted=0,
    )
    doc = {"event": "folder_idle", **folder_idle_payload(summary)}
    title, body, kind = render_text(json.loads(encode(doc)))
    assert title == "clients/acme: 300 files finished, 2 failed"
    assert body.splitlines() == [
        "Your 300 files in clients/acme are finished: 298 done, 2 failed.",
        "- clients/acme/a.mp3: no audio stream",
        "- clients/acme/b.mp3: corrupt",
    ]
    assert kind == "warning"
    assert doc["started_at"] == "1970-01-01T00:00:00Z" and doc["files"] == 300


def test_file_events_read_well_too() -> None:
    done = file_payload(
        FakeJob(
            1,
            "in/a.mp3",
            "done",
            outputs=("in/a.txt",),
            language="en",
            audio_seconds=75,
            processing_seconds=3,
        ),
        "in",
    )
    assert render_text({"event": "done", **done}) == (
        "Transcribed: in/a.mp3",
        "in/a.mp3 was transcribed (en, 1 min 15 s of audio, took 3 s).\nOutputs: in/a.txt",
        "success",
    )
    failed = file_payload(FakeJob(2, "a.mp3", "failed", last_error="not media"), ".")
    assert render_text({"event": "failed", **failed}) == (
        "Transcription failed: a.mp3",
        "a.mp3: not media",
        "failure",
    )
