"""Records/s through the userspace pipeline (decode, lineage, enrich, judge, emit), no kernel.

`python -m bench.pipeline_rate`: synthetic decoded records of three kinds go through
monitor.pipeline.Pipeline with the default rules and no outputs, in this process:
opens that match no rule, opens of /etc/shadow by `cat` (they alert), and execs. Reports
the best of --rounds in CPU time of this process (a busy neighbour core
skews wall time more), as JSON on the last stdout line. It isolates the Python cost per
record from the kernel and the ring buffer (bench.throughput measures end to end).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor import paths
from monitor.events.catalog import FIELD_TYPES
from monitor.kernel.records import ExecRecord, Header, RecordType, SyscallRecord
from monitor.lineage.cache import Lineage
from monitor.pipeline import Pipeline
from monitor.rules import RuleSources, load

OPENAT = 257


def _records(kind: str, n: int) -> list[object]:
    out: list[object] = []
    for i in range(n):
        if kind == "exec":
            h = Header(RecordType.EXEC, 0, 1000 + i, 4000 + i, 4000 + i, 1, 0, 0, 1, 5_000_000 + i, "true")
            out.append(ExecRecord(h, 0, 59, "/usr/bin/true", ["true", str(i)], -100, 0,
                                  False, False, False, False))
            continue
        comm, path = ("cat", "/etc/shadow") if kind == "alerting_open" else ("python3", "/etc/passwd")
        h = Header(RecordType.SYSCALL, 0, 1000 + i, 77, 77, 1, 0, 0, 1, 5_000_000, comm)
        out.append(SyscallRecord(h, OPENAT, 3, (2**32 - 100, 0, 0, 0, 0, 0), 0, 0, 0, bytes(16), "",
                                 path, "", None))
    return out


def measure(kind: str, n: int, rounds: int) -> dict[str, float]:
    rules = load(RuleSources(default_dir=paths.rules_dir(), fields=FIELD_TYPES))
    best = 0.0
    alerts = 0
    for _ in range(rounds):
        pipe = Pipeline(rules, [], [])
        pipe.lineage.lineage = Lineage(None, 10, 65536, 10_000_000)
        recs = _records(kind, n)
        t0 = time.process_time()
        for rec in recs:
            pipe(rec)  # type: ignore[arg-type]
        best = max(best, n / (time.process_time() - t0))
        alerts = sum(pipe.emit.alert_counts.values())
    return {"records_per_s": round(best), "alerts_per_record": round(alerts / n, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    out = {k: measure(k, args.records, args.rounds) for k in ("quiet_open", "alerting_open", "exec")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
