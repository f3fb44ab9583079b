"""The guarantees a chaos run must leave true, and its figures (tests/e2e/chaos_driver.py).

:func:`verify` reads what a finished run left (inbox, archive, outbox, ledger, service log)
and returns a :class:`Report`: every broken guarantee as one line in ``findings``, and the
figures (events carried out, engine runs per file) in ``figures``. The guarantees:

* every file's final version is ``done`` in the ledger exactly once, as its path's newest
  version, with exactly one complete set of outputs (txt srt vtt tsv json) in the mirrored
  outbox folder, whose JSON names that version's audio length and the file's path;
* no temporary file (``*.whisperd-tmp``) and no ``.error.txt`` anywhere in the outbox, and
  nothing there that no done row lists (the ledger agrees with the outbox);
* no source lost or changed unseen: with on_success keep, every file is in the inbox with
  the bytes last written; with move, every file is in the archive exactly once, with those
  bytes, and none is left in the inbox;
* no version failed because the outbox was full (the service pauses instead);
* no file ran through the engine more than ``crash_limit + 2`` times.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tests.e2e.chaos_plan import FORMATS, ChaosResult, FileRecord

DURATION_TOLERANCE = 0.02  # seconds between the JSON's audio_duration and the version's
TEMP_SUFFIX = ".whisperd-tmp"
ERROR_SUFFIX = ".error.txt"


@dataclass
class Report:
    """The verdict of one run: findings (empty when every guarantee holds) and figures."""

    findings: list[str]
    figures: dict[str, Any]

    @property
    def passed(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        """A few lines for people: the counts, then each finding."""
        f = self.figures
        lines = [
            f"chaos seed {f['seed']}: {f['files']} files, {f['versions_written']} versions; "
            f"{f['kills']} SIGKILL ({f['kills_aimed']} aimed, {f['kills_mid_job']} mid-job, "
            f"{f['kills_mid_commit']} mid-commit), {f['terms']} SIGTERM, "
            f"{f['inbox_renames']} inbox renames, {f['disk_fills']} disk fills "
            f"({f['disk_full_pauses']} pauses), {f['rewrites']} rewrites "
            f"({f['rewrites_mid_job']} mid-job); {f['seconds']} s",
            f"engine runs: {f['engine_runs_total']} in all, per file {f['engine_runs_per_file']}"
            f" (runs: files), most {f['max_engine_runs']}; flagged: {f['flagged'] or 'none'}",
        ]
        lines += [f"FINDING: {line}" for line in self.findings]
        return "\n".join(lines)


def verify(result: ChaosResult) -> Report:
    """Check every guarantee on what ``result``'s run left; see the module docstring."""
    findings = list(result.findings)
    if not result.settled:
        findings.append(f"not settled within {result.plan.settle_timeout} s of the final start")
    rows = result.service.history()
    sources = _sources(result, findings)
    listed: set[str] = set()
    for rec in result.files.values():
        if rec.rel in sources:
            listed |= _check_file(result, rec, sources[rec.rel], rows, findings)
    _check_outbox(result.outbox, listed, findings)
    for row in rows:
        error = (row.last_error or "").lower()
        if row.state == "failed" and ("disk full" in error or "no space" in error):
            findings.append(f"{row.path}: failed for a full outbox ({row.last_error})")
    figures = _figures(result, rows)
    if figures["flagged"]:
        findings.append(f"more than crash_limit + 2 engine runs: {figures['flagged']}")
    figures["passed"], figures["findings"] = not findings, findings
    return Report(findings, figures)


def _sources(result: ChaosResult, findings: list[str]) -> dict[str, Path]:
    """Where each file's source is now (inbox, or archive with move); losses are findings."""
    held = result.archive if result.archive is not None else result.inbox
    present = _files_under(held)
    if result.archive is not None:
        left = sorted(_files_under(result.inbox))
        if left:
            findings.append(f"on_success move left sources in the inbox: {left}")
    extra = sorted(present - set(result.files))
    if extra:
        findings.append(f"unexpected files in {held.name}: {extra} (archived twice?)")
    sources = {}
    for rec in result.files.values():
        if not rec.versions:
            continue  # never dropped (the run ended first): nothing to check
        path = held / rec.rel
        if rec.rel not in present:
            findings.append(f"{rec.rel}: source lost (not in {held.name})")
        elif path.read_bytes() != rec.current.data:
            findings.append(f"{rec.rel}: source is not the version last written")
        else:
            sources[rec.rel] = path
    return sources


def _check_file(result: ChaosResult, rec: FileRecord, source: Path, rows: list,
                findings: list[str]) -> set[str]:  # fmt: skip
    """One file's final version: done once, newest, one whole set of matching outputs."""
    st = source.stat()
    mine = [r for r in rows if r.path == rec.rel]
    done = [r for r in mine if r.state == "done" and r.fingerprint.size == st.st_size
            and r.fingerprint.mtime_ns == st.st_mtime_ns]  # fmt: skip
    if len(done) != 1:
        states = [(r.id, r.state, r.fingerprint.size) for r in mine]
        findings.append(f"{rec.rel}: final version done {len(done)} times (rows {states})")
        return set()
    newest = max(mine, key=lambda r: (r.enqueued_at, r.id))
    if newest.id != done[0].id:
        findings.append(f"{rec.rel}: a newer row ({newest.state}) follows the final version")
    rel = PurePosixPath(rec.rel)
    stem = (rel.parent / rel.stem).as_posix()
    expected = {f"{stem}.{fmt}" for fmt in FORMATS}
    if set(done[0].outputs) != expected:
        findings.append(f"{rec.rel}: done row lists {sorted(done[0].outputs)}")
    if (result.outbox / f"{stem}{ERROR_SUFFIX}").exists():
        findings.append(f"{rec.rel}: is done but has an {ERROR_SUFFIX}")
    missing = sorted(name for name in expected if not (result.outbox / name).is_file())
    if missing:
        findings.append(f"{rec.rel}: outputs missing: {missing}")
        return expected
    meta = json.loads((result.outbox / f"{stem}.json").read_text(encoding="utf-8"))
    if abs(meta.get("audio_duration", -1) - rec.current.seconds) > DURATION_TOLERANCE:
        named = meta.get("audio_duration")
        findings.append(f"{rec.rel}: outputs name {named} s of audio, the final version has "
                        f"{rec.current.seconds} s (a stale version's)")  # fmt: skip
    if meta.get("source") != rec.rel:
        findings.append(f"{rec.rel}: JSON source is {meta.get('source')!r}")
    return expected


def _check_outbox(outbox: Path, listed: set[str], findings: list[str]) -> None:
    """No temp files, no error files, nothing no done row lists."""
    present = _files_under(outbox)
    temps = sorted(p for p in present if p.endswith(TEMP_SUFFIX))
    if temps:
        findings.append(f"temporary files left in the outbox: {temps}")
    errors = sorted(p for p in present if p.endswith(ERROR_SUFFIX))
    if errors:
        findings.append(f"error files in the outbox: {errors}")
    unlisted = sorted(present - listed - set(temps) - set(errors))
    if unlisted:
        findings.append(f"outbox files no done row lists: {unlisted}")


def _files_under(folder: Path) -> set[str]:
    """Every file below ``folder`` (hidden ones too), as POSIX paths relative to it."""
    found = set()
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            found.add(Path(dirpath, name).relative_to(folder).as_posix())
    return found


def _figures(result: ChaosResult, rows: list) -> dict[str, Any]:
    """Counts of what the run did and what the service did (engine runs from its log)."""
    service, stats = result.service, result.stats
    runs = Counter(e.get("file") for e in service.events("transcribed"))
    claims = Counter(e.get("path") for e in service.events("job_claimed"))
    per_file = [runs.get(rel, 0) for rel, rec in result.files.items() if rec.versions]
    limit = result.plan.crash_limit + 2
    pauses = [e for e in service.events("worker_paused") if "disk full" in str(e.get("error"))]
    return {
        "seed": result.plan.seed,
        "files": sum(1 for r in result.files.values() if r.versions),
        "versions_written": sum(len(r.versions) for r in result.files.values()),
        **{
            key: stats[key]
            for key in (
                "drops",
                "rewrites",
                "rewrites_mid_job",
                "kills",
                "kills_aimed",
                "kills_mid_job",
                "kills_mid_commit",
                "kills_skipped",
                "terms",
                "terms_mid_job",
                "terms_skipped",
                "inbox_renames",
                "inbox_recreated",
                "disk_fills",
                "disk_fills_merged",
                "rewrites_for_full_disk",
                "unexpected_exits",
            )
        },
        "disk_full_pauses": len(pauses),
        "disk_full_skipped": result.disk_full_skipped,
        "commits_finished_at_start": len(service.events("commit_finished")),
        "engine_runs_total": sum(per_file),
        "engine_runs_per_file": dict(sorted(Counter(per_file).items())),
        "max_engine_runs": max(per_file, default=0),
        "flagged": {rel: n for rel, n in runs.items() if n > limit},
        "claims_total": sum(claims.values()),
        "ledger_states": dict(Counter(r.state for r in rows)),
        "failed_versions": [f"{r.path}: {r.last_error}" for r in rows if r.state == "failed"],
        "settled": result.settled,
        "seconds": round(result.seconds, 1),
    }
