#!/usr/bin/env python3
"""Output rates: records/s the file output (AsyncSink + JsonlFileSink) and, with --kafka,
the Kafka output (against a broker you start: KafkaProcessSink, its worker process, as
ringwatch runs it; KafkaSink in this process with --in-process) write, by offered rate.

A producer thread emits event-sized records (the replay benchmark's exec events) at a
paced rate for a few seconds, as the pipeline's consumer does; the report is, per offered
rate, what was written per second and what the bounded queue dropped. Past capacity a
sink that keeps up writes about its capacity and drops the rest; one that collapses
writes less the more it is offered. The last stdout line is JSON.

    .venv/bin/python bench/sink_rate.py [--seconds 4] [--rates 10000,20000,40000,80000,160000]
        [--kafka 127.0.0.1:9092 [--write-ahead-ms 5] [--in-process]] [--burst N]

`--burst N` measures the sink's own speed instead: N records emitted at once (a queue
big enough to hold them all), then the time until all are written (acknowledged, for
Kafka), twice; reports records/s and this process's CPU time per record (the Kafka
worker's own CPU is not in it).

A broker for --kafka: `tansu broker --listener-url tcp://127.0.0.1:9092
--advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/`
(scripts/setup-test-extras.sh installs Tansu under .cache/tansu-venv).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, installed or not

from bench.replay_rate import _event  # noqa: E402
from monitor.sinks.asyncq import AsyncSink  # noqa: E402
from monitor.sinks.base import Sink  # noqa: E402
from monitor.sinks.file import JsonlFileSink  # noqa: E402
from monitor.sinks.kafka import KafkaSink, KafkaSinkOptions  # noqa: E402
from monitor.sinks.kafkaproc import KafkaProcessSink  # noqa: E402
from monitor.sinks.settings import KafkaOutput  # noqa: E402

SinkFactory = Callable[[Path, int], Sink]


def file_sink(tmp: Path, queue_size: int) -> Sink:
    return AsyncSink(JsonlFileSink(tmp / "out.jsonl"), queue_size=queue_size)


def kafka_sink(bootstrap: str, write_ahead_ms: int, in_process: bool) -> SinkFactory:
    def make(tmp: Path, queue_size: int) -> Sink:
        # The producer settings ringwatch's defaults give (outputs.kafka).
        producer = KafkaOutput(bootstrap_servers=[bootstrap]).producer_kwargs()
        opts = KafkaSinkOptions(topic=f"bench-{time.time_ns()}", producer=producer,
                                spool_path=tmp / "spool.db", key="bench", stream="events",
                                queue_size=queue_size,
                                write_ahead_s=write_ahead_ms / 1000 if write_ahead_ms else None)
        if in_process:
            return KafkaSink(opts, name="kafka-bench")
        return KafkaProcessSink(opts, name="kafka-bench")
    return make


def trial(make: SinkFactory, rate: int, seconds: float, records: list[dict[str, Any]],
          queue_size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rw-sink-") as tmp:
        sink = make(Path(tmp), queue_size)
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
        # Kafka: flush() means spooled or acknowledged; wait for the acknowledgements.
        deadline = time.monotonic() + 60
        while sink.stats().get("spooled", 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        total_s = time.perf_counter() - t0
        st = sink.stats()
        sink.close()
        return {"offered_per_s": round(n / offered_s), "written": st["written"], "dropped": st["dropped"],
                "written_per_s": round(st["written"] / total_s), "seconds": round(total_s, 2)}


def burst(make: SinkFactory, n: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rw-sink-") as tmp:
        sink = make(Path(tmp), n + 10)
        sink.emit(records[0])  # connect (Kafka: metadata, topic creation) before the clock
        sink.flush(30)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            sink.emit(records[i % len(records)])
        sink.flush(120)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        st = sink.stats()
        sink.close()
    return {"records": n, "written": st["written"] - 1, "dropped": st["dropped"],
            "written_per_s": round((st["written"] - 1) / dt), "cpu_us_per_record": round(dc / n * 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rates", default="10000,20000,40000,80000,160000")
    p.add_argument("--queue-size", type=int, default=10_000, help="the outputs' default")
    p.add_argument("--kafka", metavar="HOST:PORT", help="measure the Kafka output against this broker")
    p.add_argument("--write-ahead-ms", type=int, default=0, help="the Kafka output's write_ahead_ms")
    p.add_argument("--in-process", action="store_true",
                   help="Kafka: the sink in this process (ringwatch before its worker process)")
    p.add_argument("--burst", type=int, metavar="N", help="N records at once, twice: the sink's own speed")
    args = p.parse_args(argv)
    rng = random.Random(1)
    records = [_event(rng, i, 10**9 + i) for i in range(1000)]
    make = kafka_sink(args.kafka, args.write_ahead_ms, args.in_process) if args.kafka else file_sink
    load = Path("/proc/loadavg").read_text().split()[0]
    if args.burst:
        runs = [burst(make, args.burst, records) for _ in range(2)]
        print(json.dumps({"output": "kafka" if args.kafka else "file", "burst": runs, "loadavg": load}))
        return 0
    results = [trial(make, int(r), args.seconds, records, args.queue_size) for r in args.rates.split(",")]
    for r in results:
        print(f"offered {r['offered_per_s']:>7}/s: written {r['written_per_s']:>7}/s "
              f"({r['written']} written, {r['dropped']} dropped)", file=sys.stderr)
    print(json.dumps({"output": "kafka" if args.kafka else "file", "trials": results, "loadavg": load}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
