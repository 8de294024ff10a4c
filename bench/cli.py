"""`python -m bench`: run the benchmarks, print the table, write the JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import cgroup, fixed_rate, flood, footprint, overhead, replay, report, throughput
from bench.context import PRESETS, Context, Settings, remove_pins
from bench.errors import BenchError

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("overhead", "throughput", "outputs", "footprint", "replay", "flood", "fixed_rate")


def _log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _git_commit() -> str:
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=RESULTS.parent.parent,
                         capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=RESULTS.parent.parent, capture_output=True, text=True, check=False)
    return res.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="preset", action="store_const", const="quick",
                   help="fewer iterations and rounds, for development")
    g.add_argument("--preset", choices=sorted(PRESETS))
    # On the parser, not the option: --quick shares the destination and would reset it.
    p.set_defaults(preset="full")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    p.add_argument("--rounds", type=int, help="alternating rounds per condition (overrides the preset)")
    p.add_argument("--out", type=Path, help=f"JSON output (default {RESULTS}/latest.json)")
    p.add_argument("--open-path", help="file the overhead open loop opens (default: a file in the work dir)")
    p.add_argument("--watched-path", default="/etc/shadow",
                   help="file the alerting throughput generator opens: one the default rules watch")
    p.add_argument("--quiet-path", default="/etc/hostname",
                   help="file the quiet throughput generator opens: under a watched prefix (so it "
                        "passes the kernel filter), matching no rule")
    p.add_argument("--cgroup", action="store_true",
                   help="confine the benchmark to a cgroup and ringwatch's tracing to it "
                        "(sensor.cgroups): for a machine busy with other work")
    p.add_argument("--rules", action="append", type=Path, default=[], metavar="PATH",
                   help="extra rules for the benchmark's ringwatch (ringwatch run --rules; repeatable)")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise BenchError(f"--only: unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    if os.geteuid() != 0:
        raise BenchError("the benchmarks load BPF programs: run as root")
    settings = PRESETS[args.preset]
    if args.rounds is not None:
        if args.rounds < 1:
            raise BenchError(f"--rounds must be at least 1, got {args.rounds}")
        settings = replace(settings, rounds=args.rounds)
    results: dict[str, Any] = {"meta": {
        "preset": args.preset, "rounds": settings.rounds, "settings": settings.__dict__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(), "cpus": os.cpu_count(), "commit": _git_commit(),
        "loadavg_start": _loadavg(),
    }}
    with tempfile.TemporaryDirectory(prefix="ringwatch-bench-") as tmp, contextlib.ExitStack() as stack:
        cg = stack.enter_context(cgroup.confined()) if args.cgroup else None
        results["meta"]["scope"] = f"cgroup {cg}" if cg else "host"
        try:
            _run_sections(results, sections, settings, Path(tmp), args, cg)
        finally:
            remove_pins()
    results["meta"]["loadavg_end"] = _loadavg()
    results["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results["targets"] = report.targets_json(results)
    return results


def _run_sections(
    results: dict[str, Any], sections: list[str], settings: Settings, workdir: Path,
    args: argparse.Namespace, cg: Path | None,
) -> None:
    for r in args.rules:
        if not r.exists():
            raise BenchError(f"--rules: {r}: no such file or directory")
    if not Path(args.quiet_path).is_file():
        raise BenchError(f"--quiet-path: {args.quiet_path}: not a file")
    ctx = Context.create(settings, workdir, args.open_path, args.watched_path,
                         tuple(r.resolve() for r in args.rules), cg, args.quiet_path)
    mode = "exec"
    live = "throughput" in sections or "outputs" in sections
    if "footprint" in sections or live:
        results["footprint"] = footprint.run(ctx, _log)
        # Opens are the interesting events once ringwatch records them; execs until then.
        mode = "open" if results["footprint"]["open_events_seen"] else "exec"
        if "footprint" not in sections:
            del results["footprint"]
    if "overhead" in sections:
        results["overhead"] = overhead.run(ctx, _log)
    if live:
        results["throughput"] = throughput.run(ctx, mode, sections, _log)
    if "replay" in sections:
        results["replay"] = replay.run(ctx.python)
    if "flood" in sections:
        results["flood"] = flood.run(ctx, _log)
    if "fixed_rate" in sections:
        results["fixed_rate"] = fixed_rate.run(ctx, _log)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out or RESULTS / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report.render(results))
    print(f"\nresults: {out}")
    return 0
