"""The status report on a real ledger: per-folder summary, estimates, retry commands, and
its public form (no server paths, always encodable, HTML-inert JSON)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from daemon.queue import open_ledger
from daemon.web import collect, encode_json, public_report
from daemon.web.public import redact_paths
from daemon.web.summary import estimate_end, folder_summary, midnight, retry_command, shell_arg
from tests.web.scene import LATIN1_NAME, SCRIPT_NAME, Scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return Scene(tmp_path_factory.mktemp("scene"))


def test_each_folder_shows_waiting_running_done_today_and_failed(scene: Scene) -> None:
    folders = {f["folder"]: f for f in scene.provider()["folders"]}
    # old/ (done three days ago, nothing since) has nothing to show: it is not listed
    assert set(folders) == {"", "en/meetings", "en/meetings/<script>alert(1)<", "es"}
    es = folders["es"]
    assert [es[k] for k in ("waiting", "running", "done_today", "failed")] == [2, 1, 1, 1]
    assert [f["name"] for f in es["waiting_files"]] == ["hola.mp3", "caf\\xe9 con leche.mp3"]
    [running] = es["running_jobs"]
    assert (running["name"], running["progress"], running["worker"]) == (
        "entrevista larga.mp3", 0.3, "0:cpu")  # fmt: skip
    # 30 % in 120 s: about 280 s to go
    assert running["estimate_basis"] == "progress"
    assert running["ends_in_seconds"] == pytest.approx(280, abs=15)
    [failed] = es["failed_files"]
    assert failed["retry_command"] == "whisperd retry es/ruido.wav"
    assert failed["error"].startswith(f"cannot decode {scene.cfg.inbox}/es/ruido.wav")
    meetings = folders["en/meetings"]
    assert (meetings["waiting"], meetings["done_today"], meetings["failed"]) == (2, 1, 0)
    retro = next(f for f in meetings["waiting_files"] if f["name"] == "retro.m4a")
    assert retro["error"].startswith("disk full while writing") and retro["attempts"] == 1


def test_throughput_of_the_last_hour(scene: Scene) -> None:
    report = scene.provider()
    last_hour = report["throughput_last_hour"]
    assert (last_hour["files_done"], last_hour["audio_seconds"]) == (3, 1530.0)  # ayer, standup,
    assert last_hour["realtime_factor"] == 6.0  # root
    assert report["counts"]["done"] == 4 and report["queue_ready"] == 3
    assert report["throughput"]["audio_hours_done"] == round(1590 / 3600, 3)


def test_today_starts_at_local_midnight(tmp_path: Path) -> None:
    now = datetime(2026, 3, 10, 0, 30, tzinfo=UTC).timestamp()
    scene = Scene(tmp_path, now=now)
    with open_ledger(scene.cfg.state_dir, readonly=True) as ledger:
        rows = ledger.current(now - 86400)
        by_id = ledger.jobs
        utc = {f["folder"]: f for f in folder_summary(rows, by_id, now, tz=UTC)}
        minus_5 = timezone(timedelta(hours=-5))
        east = {f["folder"]: f for f in folder_summary(rows, by_id, now, tz=minus_5)}
    # es/ayer.mp3 was done at 00:10 UTC: today in UTC, yesterday evening at UTC-5... and
    # "today" there began at 05:00 UTC the day before, so it counts as today as well
    assert utc["es"]["done_today"] == 1 and east["es"]["done_today"] == 1
    assert utc[""]["done_today"] == 1  # root.wav at 00:29
    assert midnight(now, UTC) == datetime(2026, 3, 10, tzinfo=UTC).timestamp()


def test_end_estimates(scene: Scene) -> None:
    with open_ledger(scene.cfg.state_dir, readonly=True) as ledger:
        [job] = ledger.running()
    assert estimate_end(job, job.started_at + 2, {})[0] is None  # too early to say
    from dataclasses import replace

    fresh = replace(job, progress=0.01, audio_seconds=600.0)
    assert estimate_end(fresh, job.started_at + 10, {"base": 6.0}) == (
        job.started_at + 100, "realtime_factor")  # fmt: skip
    assert estimate_end(replace(job, progress=1.0), 5.0, {}) == (5.0, "progress")


def test_retry_commands_give_the_exact_bytes_back_through_bash(tmp_path: Path) -> None:
    for name in (LATIN1_NAME, 'it\'s a "test".mp3', "-dash.wav", "tab\there.wav", "ü.mp3"):
        command = f"printf '%s' {shell_arg(name).removeprefix('-- ')}"
        out = subprocess.run(["bash", "-c", command], capture_output=True, check=True).stdout
        assert out == os.fsencode(name), name
    assert retry_command("-x.wav") == "whisperd retry -- -x.wav"


def test_public_report_hides_server_paths(scene: Scene) -> None:
    report = scene.provider()
    body = encode_json(public_report(report)).decode("utf-8")
    data = json.loads(body)
    assert not {"inbox", "outbox", "ledger"} & set(data)
    assert "pid" not in data["service"] and data["service"]["running"] is True
    assert str(scene.root) not in body
    [failed] = next(f for f in data["folders"] if f["folder"] == "es")["failed_files"]
    assert failed["error"] == (
        "cannot decode es/ruido.wav: invalid data found (the file is damaged; replace it)"
    )
    waiting = next(f for f in data["folders"] if f["folder"] == "en/meetings")["waiting_files"]
    assert "disk full while writing <outbox>/en/meetings/retro.txt" in [
        w.get("error") for w in waiting
    ]


def test_the_public_report_is_the_status_json_without_server_paths(scene: Scene) -> None:
    full = scene.provider(files=True)
    public = public_report(full, include_files=True)
    assert set(public) == set(full) - {"inbox", "outbox", "ledger"}
    for key in ("counts", "queue_ready", "throughput", "throughput_last_hour", "notifications"):
        assert public[key] == full[key], key
    assert [f["path"] for f in public["files"]] == [f["path"] for f in full["files"]]
    assert "files" not in public_report(full)  # every file only when asked for


def test_redact_leaves_relative_paths_and_fractions_alone() -> None:
    assert redact_paths("es/a/b.mp3 failed at 1/2 speed", []) == "es/a/b.mp3 failed at 1/2 speed"
    assert redact_paths("model /home/ops/.cache/whisper/base.pt missing", []) == (
        "model …/base.pt missing"
    )


def test_undecodable_names_are_escaped_and_encodable(scene: Scene) -> None:
    data = public_report(scene.provider(files=True), include_files=True)
    paths = [f["path"] for f in data["files"]]
    assert "es/caf\\xe9 con leche.mp3" in paths and LATIN1_NAME not in paths
    encode_json(data).decode("utf-8")  # strict UTF-8: no surrogate survived


def test_json_is_inert_html_and_finite() -> None:
    body = encode_json({"name": SCRIPT_NAME, "x": float("nan"), "y": float("inf")})
    assert b"<" not in body and b">" not in body
    assert json.loads(body) == {"name": SCRIPT_NAME, "x": None, "y": None}


def test_no_ledger_yet(tmp_path: Path) -> None:
    scene_cfg = Scene(tmp_path / "a").cfg.model_copy(update={"state_dir": tmp_path / "none"})
    report = collect(scene_cfg, None)
    assert report["counts"] == {} and report["folders"] == [] and report["files"] == []
    assert report["service"] == {"running": False, "pid": None}
