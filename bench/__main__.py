"""``python -m bench [--smoke] [--parts a,b] [--out DIR] [--model M]``: run, then write tables."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    accuracy,
    chaos,
    cluster,
    common,
    engines,
    latency,
    report,
    scale,
    subtitles,
    throughput,
)

# memory: with throughput
PARTS = ("throughput", "latency", "scale", "engines", "accuracy", "subtitles")
# only when named in --parts: chaos (≈ 10 minutes, root for tmpfs); cluster (PostgreSQL's
# server binaries)
OPT_IN = ("chaos", "cluster")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts; 0 when every part ran (targets missed still exit 0)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="every part in seconds")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated, from {', '.join(PARTS + OPT_IN)}"
                             " (chaos and cluster only when named)")  # fmt: skip
    parser.add_argument("--out", default=str(common.ROOT / "bench" / "results"),
                        help="where latest.md and latest.json go")  # fmt: skip
    parser.add_argument("--model", default="tiny.en", help="model for parts 1-3 (default tiny.en)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="throughput and engines rounds (default 2)"
    )
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="audio per throughput contender (default 10)")  # fmt: skip
    parser.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--seed", type=int, help="chaos: replay this seed (default: random)")
    parser.add_argument(
        "--subtitle-minutes",
        type=float,
        default=3.0,
        help="audio per contender in the subtitles part's cost (default 3)",
    )
    parser.add_argument(
        "--subtitle-short",
        action="store_true",
        help="the subtitles part on the tests' shorter programmes (about 7 min of audio)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="add this run's parts to --out's latest.json instead of replacing it",
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS) - set(OPT_IN) - {"memory"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if "memory" in parts and "throughput" not in parts:
        parts.append("throughput")
    parts = [p for p in PARTS + OPT_IN if p in parts]  # engines before accuracy: reuses texts

    work = Path(args.work or tempfile.mkdtemp(prefix="whisperd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "machine": common.machine(args.model),
        "parts": {},
        "errors": {},
    }
    ctx: dict = {}
    smoke = args.smoke
    jobs = {
        "throughput": lambda d: throughput.run(
            d, model=args.model, smoke=smoke, rounds=1 if smoke else args.rounds,
            min_seconds=args.minutes * 60, ctx=ctx),
        "latency": lambda d: latency.run(d, model=args.model, smoke=smoke, drops=1 if smoke else 3),
        "scale": lambda d: scale.run(
            d, model=args.model, sizes=[200] if smoke else [10_000, 100_000],
            idle_seconds=5.0 if smoke else 60.0, ledger_rows=20_000 if smoke else 1_000_000,
            unload_after=3.0 if smoke else 10.0),
        "engines": lambda d: engines.run(
            d, model="base", smoke=smoke, rounds=1 if smoke else args.rounds, ctx=ctx
        ),
        "cluster": lambda d: cluster.run(d, model=args.model, smoke=smoke),
        "accuracy": lambda d: accuracy.run(
            d, models=[args.model] if smoke else sorted({args.model, "tiny.en", "base"}),
            smoke=smoke, ctx=ctx),
        "chaos": lambda d: chaos.run(d, model=args.model, smoke=smoke, seed=args.seed),
        "subtitles": lambda d: subtitles.run(
            d, smoke=smoke, rounds=1 if smoke else args.rounds, minutes=args.subtitle_minutes,
            short=args.subtitle_short),
    }  # fmt: skip
    if args.merge:
        results = report.merged(Path(args.out), results, parts)
    try:
        for part in parts:
            if part == "engines" and smoke:
                results["parts"]["engines"] = {"available": False, "reason": "skipped in smoke"}
                continue
            print(f"bench: {part} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            folder = work / part
            folder.mkdir()
            try:
                results["parts"][part] = jobs[part](folder)
            except Exception as err:  # one broken part must not lose the others' results
                traceback.print_exc()
                results["errors"][part] = f"{type(err).__name__}: {err}"
            print(f"bench: {part} took {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
            results["duration_seconds"] = time.monotonic() - started
            report.write(results, Path(args.out))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    results["duration_seconds"] = time.monotonic() - started
    md, js = report.write(results, Path(args.out))
    print(md.read_text(encoding="utf-8"))
    print(f"bench: wrote {md} and {js}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
