"""The results table: Markdown for people, JSON for tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _ok(flag: bool) -> str:
    return "yes" if flag else "**NO**"


def _library(lines: list[str], lib: dict[str, Any]) -> None:
    """The media-library rows of the scale part."""
    first, again = lib["first_start"], lib["restart"]
    lines += [
        f"Media library (`outputs_beside_source`), {lib['videos']} videos, all subtitled (one "
        f"in {lib['embedded_every']} inside the container, the others beside it), empty "
        "ledger at the first start:",
        "",
        "| start | start → READY s | all recorded s | RSS MB | idle CPU % | queued | skipped |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| first | {first['startup_seconds']} | {first['all_recorded_seconds']} "
        f"| {first['rss_mb']} | {first['idle_cpu_percent']} | {first['queued']} "
        f"| {first['skipped']} |",
        f"| restart | {again['startup_seconds']} | - | {again['rss_mb']} "
        f"| {again['idle_cpu_percent']} | {again['queued']} | - |",
        "",
    ]


def _operate(lines: list[str], s: dict) -> None:
    """The listener under use, a large ledger, idle memory after a job (bench.operate)."""
    for key, x in s.items():
        visited = x.get("inotify", {}).get("visited") if key.isdigit() else None
        if visited:
            lines.append(f"- {x['files']} files, listener visited (a scrape every 15 s, the page "
                         f"every 5 s): idle CPU {visited['cpu_percent']} % of a core, RSS "
                         f"{visited['rss_mb']} MB, requests {visited['requests']}, slowest "
                         f"{visited.get('slowest_request_seconds')} s"
                         + (f" (after the page's first load, {visited['first_load_seconds']} s)"
                            if "first_load_seconds" in visited else ""))  # fmt: skip
    ledger = s.get("ledger")
    if ledger:
        lines.append(
            f"- ledger of {ledger['rows']:,} rows: `whisperd status` "
            f"{ledger['status_command_seconds']} s (process start included), the page's report "
            f"{ledger['status_report_seconds']} s, a metrics snapshot "
            f"{ledger['metrics_snapshot_seconds']} s; daily pruning removed "
            f"{ledger['pruned_rows']:,} rows in {ledger['prune_seconds']} s, vacuum "
            f"{'ran' if ledger['vacuumed'] else 'not needed'} ({ledger['vacuum_seconds']} s), "
            f"file {ledger['ledger_mb_after']} MB"
        )
    idle = s.get("idle_after_job")
    if idle:
        lines.append(
            f"- idle RSS: {idle['rss_mb_after_ready']} MB after READY, "
            f"{idle['rss_mb_model_loaded']} MB after one job (model loaded), "
            f"{idle['rss_mb_after_unload']} MB once models.unload_after "
            f"({idle['unload_after_seconds']} s) unloaded it"
        )
    lines.append("")


def _targets(lines: list[str], targets: dict[str, bool]) -> None:
    for name, flag in targets.items():
        lines.append(f"- target {name}: {_ok(flag)}")


def markdown(results: dict[str, Any]) -> str:
    """The whole run as Markdown."""
    m = results["machine"]
    lines = [
        "# whisperd benchmark results",
        "",
        (
            "Parts from separate runs: "
            + "; ".join(f"{parts} at {when}" for parts, when in results["runs"].items())
            if "runs" in results
            else f"Run {results['started']} ({'smoke' if results['smoke'] else 'full'})"
        )
        + f", {results['duration_seconds']:.0f} s in all.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        f"| CPU | {m['cpu']} ({m['cores_logical']} logical / {m['cores_physical']} physical) |",
        f"| memory | {m['memory_gb']} GiB |",
        f"| GPU | {m['gpu'] or 'none (torch.cuda unavailable)'} |",
        f"| torch / threads | {m['torch']} / {m['torch_threads']} |",
        f"| whisperd | {m['whisperd']} (Python {m['python']}) |",
        f"| model / engine | {m['model']} / {m['engine']} |",
    ]
    for run, other in results.get("machines", {}).items():
        if other != m:  # a part merged from a run on another machine
            lines.append(f"| parts {run} | {other['cpu']} ({other['cores_logical']} "
                         f"logical), torch {other['torch']} / {other['torch_threads']} "
                         "threads |")  # fmt: skip
    parts = results["parts"]
    if "throughput" in parts:
        t = parts["throughput"]
        lines += [
            "",
            "## 1. Bulk throughput",
            "",
            f"{t['files']} files, {t['audio_seconds']} s of audio, audio seconds per wall second "
            "(higher is better). a: `whisper` CLI per file; b: raw openai-whisper, one process; "
            "c: `whisperd run` (stability window included).",
            "",
            "| round | a rate | b rate | c rate | c/a | c/b |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for i, r in enumerate(t["rounds"]):
            lines.append(f"| {i + 1} | {r['a_rate']:.2f} | {r['b_rate']:.2f} | {r['c_rate']:.2f} "
                         f"| {r['c_over_a']:.2f} | {r['c_over_b']:.2f} |")  # fmt: skip
        med = t["median"]
        lines.append(f"| median | {med['a_rate']:.2f} | {med['b_rate']:.2f} | {med['c_rate']:.2f} "
                     f"| {med['c_over_a']:.2f} | {med['c_over_b']:.2f} |")  # fmt: skip
        lines.append("")
        _targets(lines, t["targets"])
        mem = t["memory"]
        lines += [
            "",
            "## 5. Memory (service during the throughput run)",
            "",
            f"RSS after READY {mem['rss_after_ready_mb']} MB; peak RSS {mem['peak_rss_mb']} MB "
            "(sampled every 0.2 s, children included).",
        ]
    if "latency" in parts:
        lat = parts["latency"]
        minus = lat.get("stable_seconds_subtracted", lat["stable_seconds"])
        lines += [
            "",
            "## 2. Latency",
            "",
            f"`{lat['clip']}` renamed into the inbox → its last output"
            + (
                f", minus stable_seconds ({minus} s)"
                if minus
                else " (a whole WAV nobody "
                f"writes is ready at once; stable_seconds {lat['stable_seconds']} s is for "
                "files whisperd cannot judge)"
            )
            + "; service warm.",
            "",
            "| mode | drops | median latency s | median pipeline s |",
            "| --- | --- | --- | --- |",
        ]
        for mode in ("inotify", "polling"):
            if mode in lat:
                x = lat[mode]
                lines.append(f"| {mode} | {len(x['drops'])} | {x['median_latency_seconds']:.2f} "
                             f"| {x['median_processing_seconds']} |")  # fmt: skip
    if "scale" in parts:
        s = parts["scale"]
        lines += [
            "",
            "## 3. Scale and idle cost",
            "",
            f"Already-done files in nested folders; idle CPU over {s['idle_window_seconds']} s. "
            f"Start-up on an empty inbox: {s['empty_inbox_startup_seconds']} s.",
            "",
            "| files | mode | start → READY s | RSS MB | idle CPU % of a core | queued |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for key, x in s.items():
            if not key.isdigit():
                continue
            for mode in ("inotify", "polling"):
                y = x[mode]
                lines.append(f"| {x['files']} | {mode} | {y['startup_seconds']} | {y['rss_mb']} "
                             f"| {y['idle_cpu_percent']} | {y['queued_by_service']} |")  # fmt: skip
        _burst(lines, s.get("burst", {}))
        lines.append("")
        if "library" in s:
            _library(lines, s["library"])
        _operate(lines, s)
        _targets(lines, s["targets"])
    if "accuracy" in parts:
        a = parts["accuracy"]
        lines += [
            "",
            "## 4. Accuracy",
            "",
            "| model/language | clips | WER service % | WER raw % | identical | service side |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for key, x in a.items():
            if key == "targets":
                continue
            lines.append(f"| {key} | {x['clips']} | {x['wer_service']} | {x['wer_raw']} "
                         f"| {x['identical']}/{x['clips']} | {x['service_source']} |")  # fmt: skip
        lines.append("")
        _targets(lines, a["targets"])
    if "engines" in parts:
        e = parts["engines"]
        lines += ["", "## 6. Engines (faster-whisper vs openai-whisper)", ""]
        if not e.get("available"):
            lines.append(f"not available: {e.get('reason')}")
        else:
            lines += [
                f"Model {e['model']}, beam 5, {e['clips']} Spanish clips ({e['audio_seconds']} s), "
                f"{e['rounds']} round(s); faster-whisper at compute_type auto (int8 on CPU).",
                "",
                "Wall: the whole `transcribe` command (interpreter start-up included), or `run`'s"
                " drop → last output (stability window included). Busy: the pipeline's own"
                " seconds (transcribe: sum of processing_seconds in the JSON) or first job start"
                " → last job end in the ledger (run). Model loading is in both.",
                "",
                "| command | engine | median wall s | median busy s | WER % |",
                "| --- | --- | --- | --- | --- |",
            ]
            for mode in ("transcribe", "run"):
                for engine in ("openai-whisper", "faster-whisper"):
                    x = e[f"{mode}:{engine}"]
                    lines.append(f"| whisperd {mode} | {engine} | {x['median_seconds']} "
                                 f"| {x['median_busy_seconds']} | {x['wer']} |")  # fmt: skip
            lines += [
                "",
                "Speed-up of faster-whisper (openai time / faster time, median of rounds): "
                f"transcribe {e['transcribe_busy_speedup_faster_over_openai']}× busy "
                f"({e['transcribe_speedup_faster_over_openai']}× wall), "
                f"run {e['run_busy_speedup_faster_over_openai']}× busy "
                f"({e['run_speedup_faster_over_openai']}× wall).",
            ]
            target = min(e["transcribe_busy_speedup_faster_over_openai"],
                         e["run_busy_speedup_faster_over_openai"])  # fmt: skip
            lines.append(f"- target faster-whisper ≥ 3× openai-whisper (busy): "
                         f"{'yes' if target >= 3 else '**NO**'}")  # fmt: skip
    if "chaos" in parts:
        lines += _chaos(parts["chaos"])
    if "cluster" in parts:
        lines += _cluster(parts["cluster"])
    if "subtitles" in parts:
        lines += _subtitles(parts["subtitles"])
    for name, err in results.get("errors", {}).items():
        lines += ["", f"**part {name} failed**: {err}"]
    return "\n".join(lines) + "\n"


def _chaos(c: dict[str, Any]) -> list[str]:
    """Section 7: what the chaos driver did, what the service did, each broken guarantee."""
    plan = c["plan"]
    disk = f"{c['disk_fills']} ({c['disk_full_pauses']} worker pauses for a full disk)"
    if c.get("disk_fills_merged"):
        disk += f"; {c['disk_fills_merged']} more found it still full"
    if c["disk_full_skipped"] is not None:
        disk = f"skipped: {c['disk_full_skipped']}"
    runs = ", ".join(f"{n} run(s): {files} files" for n, files in c["engine_runs_per_file"].items())
    where = f"; measured on {c['machine']['cpu']}" if "machine" in c else ""
    lines = [
        "",
        "## 7. Chaos",
        "",
        f"`whisperd run` with {c['model']}, {c['files']} files ({c['versions_written']} "
        f"versions), {plan['window_seconds']:.0f} s of chaos, crash_limit {plan['crash_limit']},"
        f" seed {c['seed']} (replay: `--parts chaos --seed {c['seed']}`); {c['seconds']} s "
        f"in all, the final settling included{where}.",
        "",
        "| event | planned | carried out | of which |",
        "| --- | --- | --- | --- |",
        f"| SIGKILL | {plan['kills']} | {c['kills']} | {c['kills_mid_job']} mid-job "
        f"({c['kills_aimed']} aimed at a job), {c['kills_mid_commit']} mid-commit |",
        f"| SIGTERM | {plan['terms']} | {c['terms']} | {c['terms_mid_job']} left a job running |",
        f"| inbox renamed away and back | {plan['inbox_renames']} | {c['inbox_renames']} "
        f"| {c['inbox_recreated']} times the service made a new inbox meanwhile |",
        f"| outbox filesystem filled | {plan['disk_fills']} | {disk} | |",
        f"| file rewritten | {plan['rewrites']} | {c['rewrites']} | "
        f"{c['rewrites_mid_job']} during its job, {c.get('rewrites_for_full_disk', 0)} to give "
        "a full disk work |",
        "",
        f"Engine runs (the log's `transcribed` lines): {c['engine_runs_total']} for "
        f"{c['files']} files; {runs}; most {c['max_engine_runs']}. Jobs claimed: "
        f"{c['claims_total']}; commits finished at start-up: {c['commits_finished_at_start']}. "
        f"Ledger rows: {', '.join(f'{k} {v}' for k, v in sorted(c['ledger_states'].items()))}.",
        "",
        f"- target every guarantee holds (one complete set of outputs per final version, no "
        f"temp files, no source lost, ledger = outbox): {_ok(c['passed'])}",
    ]
    lines += [f"  - {finding.splitlines()[0]}" for finding in c["findings"]]
    return lines


def _burst(lines: list[str], burst: dict[str, Any]) -> None:
    """New files appearing at once in a running service's inbox (a few folder renames)."""
    if not burst:
        return
    lines += [
        "",
        "Burst: new files renamed into a running service's inbox at once (inotify; the 5 s "
        "stability window included); watchdog pings due every second.",
        "",
        "| files | all recorded s | files/s | watchdog pings | longest silence s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for x in burst.values():
        gap = x["longest_watchdog_gap_seconds"]
        lines.append(f"| {x['files']} | {x['recorded_seconds']} | {x['files_per_second']} "
                     f"| {x['watchdog_pings']} | {gap} |")  # fmt: skip


def _cluster(c: dict[str, Any]) -> list[str]:
    """Several nodes on one PostgreSQL ledger, on this one machine."""
    lines = [
        "",
        "## 8. Cluster: nodes on one PostgreSQL ledger",
        "",
        f"{c['files']} files, {c['audio_seconds']} s of audio, {c['model']}, every node on this "
        f"machine ({c['cores']} cores shared: each of n nodes gets cores/n torch threads). "
        "Efficiency = (rate n / rate 1) / n; on one machine it shows the cost of coordination, "
        "not what n GPU servers would give.",
        "",
        "| nodes | wall s | audio s / s | speed-up | efficiency | SQL statements / job |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in c["runs"]:
        lines.append(f"| {r['nodes']} | {r['wall_seconds']} | {r['rate']} | {r['speedup']} "
                     f"| {r['efficiency']} | {r['statements_per_job']} |")  # fmt: skip
    k, r = c["claims"], c["reclaim"]
    lines += [
        "",
        f"- per claim (in-process, {k['jobs']} jobs): claim {k['claim_ms']} ms; claim → stage → "
        f"lease check → done {k['claim_to_done_ms']} ms (medians)",
        f"- kill -9 of a node mid-job, lease {r['lease_seconds']} s: queued again after "
        f"{r['queued_again_seconds']} s, claimed again after {r['claimed_again_seconds']} s",
        "- statements per job count everything the nodes sent during the run (claims, "
        "renewals, progress, status records, idle polls) divided by the files",
    ]
    return lines


def _subtitles(s: dict[str, Any]) -> list[str]:
    """Part 9: the subtitle path against the plain path."""
    progs = ", ".join(f"{name} {seconds} s" for name, seconds in s["programmes"].items())
    lines = [
        "",
        "## 9. Subtitles (speech detection, word timings, guard, readable cues)",
        "",
        "plain: `vad: {enabled: false}, subtitles: {style: whisper}` (no word timings); "
        "default: the shipped settings. `whisperd transcribe`, tiny.en, beam 5, fp32 on CPU.",
        "",
        "Cost on the throughput clips (busy: the JSONs' processing_seconds, warm-up clip "
        "left out; CPU: user + system of the process), default / plain:",
        "",
        "| engine | files | audio s | round | plain busy s | default busy s | busy ratio "
        "| plain CPU s | default CPU s | CPU ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    engines = [e for e in ("openai-whisper", "faster-whisper") if e in s]
    for engine in engines:
        c = s[engine]["cost"]
        for i, r in enumerate(c["rounds"]):
            cells = [engine, c["files"], c["audio_seconds"], i + 1, r["plain_busy"],
                     r["default_busy"], r["busy_ratio"], r["plain_cpu"], r["default_cpu"],
                     r["cpu_ratio"]]  # fmt: skip
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        lines.append(f"| {engine} | | | median | | | {c['median_busy_ratio']:.3f} | | "
                     f"| {c['median_cpu_ratio']:.3f} |")  # fmt: skip
    lines += [
        "",
        f"Programmes ({progs}); per engine, plain → default: words in cues overlapping no "
        "true speech, the earliest cue start before its speech (default), cues within every "
        "rule (checked on the srt), the worst reading speed (default), WER, segments the guard "
        "dropped, busy-time ratio default / plain.",
        "",
        "| engine | programme | words away from speech | max lead s | within all rules "
        "| max cps | WER % | dropped | busy ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for engine in engines:
        for name, row in s[engine]["programmes"].items():
            p, d = row["plain"], row["default"]
            within = "-" if d["within_all"] is None else (
                f"{100 * p['within_all']:.0f} → {100 * d['within_all']:.0f} %")  # fmt: skip
            wer = "-" if d["wer"] is None else f"{p['wer']} → {d['wer']}"
            away = f"{p['words_away_from_speech']} → {d['words_away_from_speech']}"
            cells = [engine, name, away, d["max_lead_seconds"], within, d["max_cps"], wer,
                     d["dropped"], row["busy_ratio"]]  # fmt: skip
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines.append("")
    _targets(lines, s["targets"])
    return lines


def merged(out: Path, results: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """``results`` over the earlier ``latest.json`` in ``out``: its other parts are kept."""
    path = out / "latest.json"
    if not path.is_file():
        return results
    old = json.loads(path.read_text(encoding="utf-8"))
    runs = old.get("runs") or {",".join(old.get("parts", {})): old.get("started")}
    kept = {k: v for k, v in old.get("parts", {}).items() if k not in parts}
    machines = old.get("machines") or dict.fromkeys(runs, old.get("machine"))
    key = ",".join(parts)
    return {**results, "parts": kept, "runs": {**runs, key: results["started"]},
            "machines": {**machines, key: results["machine"]}}  # fmt: skip


def write(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """latest.md and latest.json in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "latest.md", out / "latest.json"
    md.write_text(markdown(results), encoding="utf-8")
    js.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js
