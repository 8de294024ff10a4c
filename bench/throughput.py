"""Throughput: the highest rate of interesting events ringwatch takes end to end
(decode, lineage, rules, output) for a whole window with nothing lost, found by a search
(bench/search.py) per workload:

- `quiet`: opens of a file that passes the kernel's path filter (it is under `/etc/`, which
  rules watch) but matches no rule;
- `alerting`: opens of a file the default rules watch (`/etc/shadow`): every one alerts.
  Both run ringwatch as a host runs it, no event written anywhere, and count from
  `ringwatch stats` (`counted`);
- `events_file` / `events_kafka` (section `outputs`): every event out, as a SIEM feed
  would have it: `outputs.events` to a file or to Kafka (Tansu on loopback),
  `sensor.extra_event_types: [all]`, no `--record`; the generator's quiet opens are
  counted in the file or read back from the topic.

Until ringwatch records opens (the footprint run probes it), execs stand in (`exec`).
Each trial starts a fresh ringwatch, so its counters cover the trial alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import procfs, ringwatch, tansu, workloads
from bench.context import Context
from bench.daemons import RunningMonitor
from bench.errors import BenchError
from bench.footprint import EXEC_TYPES, OPEN_TYPES
from bench.search import RateSearch, Trial

# The generator "kept up" if it offered at least this share of the target rate.
KEPT_UP = 0.95


@dataclass(frozen=True)
class Workload:
    name: str
    gen_mode: str  # rw-bench-gen's mode: open or exec
    path: str  # what the generator opens or executes
    # Where the generator's events are counted: stats (`ringwatch stats`: syscall records
    # the pipeline took, or alerts raised), record (--record), file, kafka.
    output: str
    describe: str
    # Config on top of the benchmark's own (private pins and socket, cgroup).
    config: dict[str, Any] = field(default_factory=dict)
    # With output "stats": the (section, key) of `ringwatch stats` that counts its events.
    stat: tuple[str, str] = ("events", "syscall")


# The generator repeats one open from one process: coalescing would fold the repeats into
# a record per window and throttling hold the process to 2000 records/s. Both off, so each
# open is a record through the whole pipeline: what is measured is the pipeline's rate.
PIPELINE_ONLY = {"sensor": {"coalesce_window_ms": 0, "throttle_process_rate": 0,
                            "throttle_cgroup_rate": 0}}
ALL_EVENTS = {"sensor": {**PIPELINE_ONLY["sensor"], "extra_event_types": ["all"]}}


def workloads_for(ctx: Context, mode: str, sections: list[str]) -> list[Workload]:
    out: list[Workload] = []
    if "throughput" in sections:
        if mode == "open":
            out.append(Workload("quiet", "open", ctx.quiet_open_path, "stats",
                                f"opens of {ctx.quiet_open_path} "
                                "(passes the kernel filter, matches no rule)", PIPELINE_ONLY))
            out.append(Workload("alerting", "open", ctx.interesting_open_path, "stats",
                                f"opens of {ctx.interesting_open_path} (every one alerts)", PIPELINE_ONLY,
                                stat=("alerts", "total")))
        else:
            out.append(Workload("exec", "exec", ctx.exec_path, "record", f"execs of {ctx.exec_path}",
                                PIPELINE_ONLY))
    if "outputs" in sections:
        out.append(Workload("events_file", "open", ctx.quiet_open_path, "file",
                            f"every event to outputs.events.file, extra_event_types [all]; "
                            f"counted: opens of {ctx.quiet_open_path}", ALL_EVENTS))
        out.append(Workload("events_kafka", "open", ctx.quiet_open_path, "kafka",
                            f"every event to outputs.events.kafka_topic (Tansu on loopback), "
                            f"extra_event_types [all]; counted: opens of {ctx.quiet_open_path}",
                            ALL_EVENTS))
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _trial_config(ctx: Context, w: Workload, workdir: Path, kafka: str | None, topic: str) -> Path:
    cfg = _merge(yaml.safe_load(ctx.config.read_text()) or {}, w.config)
    if w.output == "file":
        cfg = _merge(cfg, {"outputs": {"events": {"file": {"path": str(workdir / "events.jsonl")}}}})
    elif w.output == "kafka":
        if kafka is None:
            raise BenchError("the Kafka workload needs a broker")
        cfg = _merge(cfg, {"outputs": {"events": {"kafka_topic": topic},
                                       "kafka": {"bootstrap_servers": [kafka]},
                                       "spool": {"dir": str(workdir / "spool")}}})
    path = workdir / "ringwatch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def catch_up(ctx: Context, timeout: float) -> tuple[float | None, dict[str, Any] | None]:
    """Seconds until ringwatch has consumed every record produced by the time the
    generator ended (from `ringwatch stats`), and the last snapshot; (None, None) if the
    daemon has no control socket. Gives up at `timeout`, returning the time waited."""
    t0 = time.monotonic()
    snap = ringwatch.stats(ctx.control_socket)
    if snap is None:
        return None, None
    # Records the kernel dropped were produced but will never be consumed.
    kernel_lost = sum(v for k, v in ringwatch.stats_losses(snap).items() if k.startswith("kernel."))
    target = sum(snap.get("produced", {}).values()) - kernel_lost
    while True:
        if sum(snap.get("events", {}).values()) >= target and idle_outputs(snap):
            return time.monotonic() - t0, snap
        if time.monotonic() - t0 > timeout:
            return time.monotonic() - t0, snap
        time.sleep(0.05)
        snap = ringwatch.stats(ctx.control_socket) or snap


def idle_outputs(snap: dict[str, Any]) -> bool:
    """Nothing waits in an output's queue or spool: what was consumed is written."""
    outs = snap.get("outputs", {})
    return not any(isinstance(st, dict) and (st.get("queued") or st.get("spooled"))
                   for st in (outs.values() if isinstance(outs, dict) else ()))


def _lines(values: list[bytes]) -> Iterator[bytes]:
    for v in values:
        yield v + b"\n"


def trial(ctx: Context, w: Workload, rate: float, n: int,
          kafka: str | None = None) -> tuple[Trial, dict[str, Any]]:
    workdir = ctx.workdir / f"throughput-{w.name}-{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    topic = f"rw-bench-{w.name}-{n}-{time.time_ns()}"
    config = _trial_config(ctx, w, workdir, kafka, topic)
    record = workdir / "events.jsonl"
    mon = RunningMonitor(ringwatch.spec(ctx.python, config, record if w.output == "record" else None,
                                        ctx.rules), workdir)
    mode = w.gen_mode
    try:
        mon.start()
        before = procfs.sample(mon.pid)
        gen = workloads.finish_gen(
            workloads.start_gen(ctx.gen_bin, mode, rate, ctx.settings.window_s, w.path))
        after = procfs.sample(mon.pid)
        lag, snap = catch_up(ctx, ctx.settings.lag_limit_s * 2)
        rc = mon.stop()
    finally:
        mon.kill()
    stopped = ringwatch.log_entry(mon.stderr(), "stopped")
    if rc != 0 or stopped is None:
        raise BenchError(f"ringwatch exited {rc} during a throughput trial:\n" + mon.stderr()[-2000:])
    field_, types = ("proc.pid", OPEN_TYPES) if mode == "open" else ("proc.ppid", EXEC_TYPES)
    if w.output == "kafka":
        assert kafka is not None
        values = tansu.read_values(kafka, topic)
        seen = ringwatch.count_events(_lines(values), field_, gen.pid, types)
        written = len(values)
    elif w.output == "stats":
        seen, written = counted(w, gen.ops, snap), 0
    else:
        seen = ringwatch.count_events_in(record, field_, gen.pid, types)
        written = _count_lines(record)
    record.unlink(missing_ok=True)
    lost = ringwatch.merge_losses(ringwatch.losses(stopped), ringwatch.stats_losses(snap) if snap else {})
    # Without a control socket, the time SIGTERM took (drain + detach) stands in for the lag.
    drain_s = lag if lag is not None else mon.stop_s
    elapsed = gen.elapsed_ns / 1e9
    reasons = []
    if sum(lost.values()):
        reasons.append("lost " + ", ".join(f"{k}={v}" for k, v in lost.items() if v))
    if seen < gen.ops:
        reasons.append(f"missing {gen.ops - seen} of {gen.ops} events")
    if drain_s > ctx.settings.lag_limit_s:
        reasons.append(f"took {drain_s:.1f}s to drain")
    t = Trial(
        target=rate,
        achieved=seen / elapsed,
        passed=not reasons,
        generator_kept_up=gen.ops_per_s >= KEPT_UP * rate,
        reason="; ".join(reasons),
    )
    detail = {
        **asdict(t),
        "generator_ops_per_s": gen.ops_per_s,
        "events_seen": seen,
        # Records in the file or topic (events of every process ringwatch traces).
        "records_written": written,
        "records_written_per_s": written / elapsed,
        "all_records_delivered": ringwatch.delivered_total(stopped),
        # Everything ringwatch consumed over its whole run (start-up and drain included),
        # per second of the window: the generator's events plus the host's own.
        "all_records_per_s": ringwatch.delivered_total(stopped) / elapsed,
        "losses": lost,
        # Alerts raised during the trial (every event an alert is the costly case).
        "alerts": (snap or {}).get("alerts", {}).get("total"),
        "drain_s": drain_s,
        "drain_from": "stats" if lag is not None else "stop",
        "stop_s": mon.stop_s,
        "cpu_fraction": (after.cpu_s - before.cpu_s) / elapsed,
        "rss_bytes": after.rss_bytes,
        "peak_rss_bytes": after.hwm_bytes,
    }
    return t, detail


def counted(w: Workload, ops: int, snap: dict[str, Any] | None) -> int:
    """The generator's events as `ringwatch stats` accounts for them: syscall records the
    pipeline took (quiet) or alerts raised (alerting), at most `ops`.

    Writing every event out only to count them cost a quiet event a third of its time
    (JSON, and ext4's appends), which a host that writes no events never pays; the
    `events_*` workloads measure that output. Stats cannot tell the generator's records
    from the host's, which only add to the count: a trial whose opens did not reach the
    pipeline (filtered in the kernel, lost) still falls short by nearly all of them, and
    losses anywhere fail it on their own.
    """
    if snap is None:
        raise BenchError(f"the {w.name} workload counts from `ringwatch stats`: no control socket")
    section, key = w.stat
    return min(int(snap.get(section, {}).get(key) or 0), ops)


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        return sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))


def search(ctx: Context, w: Workload, log: Any, kafka: str | None = None) -> dict[str, Any]:
    s = ctx.settings
    rs = RateSearch(s.start_rate[w.name], s.max_doublings, s.bisect_steps)
    details: list[dict[str, Any]] = []
    while (rate := rs.next_target()) is not None:
        log(f"throughput {w.name} trial {len(details) + 1}: {rate:,.0f} events/s for {s.window_s:g}s")
        t, d = trial(ctx, w, rate, len(details), kafka)
        log(f"  -> {t.achieved:,.0f}/s {'pass' if t.passed else 'FAIL: ' + t.reason}"
            f"{'' if t.generator_kept_up else ' (generator could not keep up)'}")
        rs.record(t)
        details.append(d)
    best = rs.best
    best_detail = next((d for d in details if best and d["target"] == best.target), None)
    return {
        "interesting": w.describe,
        "output": w.output,
        "best_events_per_s": best.achieved if best else 0.0,
        # Every record the output wrote during the best trial, per second (all events out).
        "best_records_written_per_s": best_detail["records_written_per_s"] if best_detail else 0.0,
        "bound": rs.bound,
        "first_failure": asdict(rs.first_failure) if rs.first_failure else None,
        "under_load": {k: best_detail[k] for k in ("cpu_fraction", "rss_bytes", "peak_rss_bytes")}
        if best_detail else None,
        "trials": details,
    }


def run(ctx: Context, mode: str, sections: list[str], log: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for w in workloads_for(ctx, mode, sections):
        if w.output == "kafka":
            # Outside the benchmark's cgroup: a broker on the traced host would feed its
            # own syscalls back into the events it receives.
            outside = ctx.cgroup.parent if ctx.cgroup is not None else None
            with tansu.broker(ctx.workdir, outside) as kafka:
                found[w.name] = search(ctx, w, log, kafka)
        else:
            found[w.name] = search(ctx, w, log)
    return {"mode": mode, "window_s": ctx.settings.window_s, "searches": found}
