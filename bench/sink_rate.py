#!/usr/bin/env python3
"""File output rate: records/s an AsyncSink-wrapped JsonlFileSink writes, by offered rate.

A producer thread emits event-sized records (the replay benchmark's exec events) at a
paced rate for a few seconds, as the pipeline's consumer does; the report is, per offered
rate, what was written per second and what the bounded queue dropped. Past capacity a
sink that keeps up writes about its capacity and drops the rest; one that collapses
writes less the more it is offered. The last stdout line is JSON.

    .venv/bin/python bench/sink_rate.py [--seconds 4] [--rates 10000,20000,40000,80000,160000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, installed or not

from bench.replay_rate import _event  # noqa: E402
from monitor.sinks.asyncq import AsyncSink  # noqa: E402
from monitor.sinks.file import JsonlFileSink  # noqa: E402


def trial(rate: int, seconds: float, records: list[dict[str, Any]], queue_size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rw-sink-") as tmp:
        sink = AsyncSink(JsonlFileSink(Path(tmp) / "out.jsonl"), queue_size=queue_size)
        n = int(rate * seconds)
        t0 = time.perf_counter()
        step = 256  # emit in small bursts, then wait for the schedule: paced, not bursty
        for i in range(0, n, step):
            for j in range(i, min(n, i + step)):
                sink.emit(records[j % len(records)])
            due = t0 + (i + step) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        offered_s = time.perf_counter() - t0
        sink.flush(30)
        total_s = time.perf_counter() - t0
        st = sink.stats()
        sink.close()
        return {"offered_per_s": round(n / offered_s), "written": st["written"], "dropped": st["dropped"],
                "written_per_s": round(st["written"] / total_s), "seconds": round(total_s, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rates", default="10000,20000,40000,80000,160000")
    p.add_argument("--queue-size", type=int, default=10_000, help="the outputs' default")
    args = p.parse_args(argv)
    rng = random.Random(1)
    records = [_event(rng, i, 10**9 + i) for i in range(1000)]
    results = [trial(int(r), args.seconds, records, args.queue_size) for r in args.rates.split(",")]
    for r in results:
        print(f"offered {r['offered_per_s']:>7}/s: written {r['written_per_s']:>7}/s "
              f"({r['written']} written, {r['dropped']} dropped)", file=sys.stderr)
    print(json.dumps({"file_sink": results, "loadavg": Path("/proc/loadavg").read_text().split()[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
