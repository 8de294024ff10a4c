"""At fixed rates: what an event costs ringwatch, and how late its alert comes.

The throughput searches find the most ringwatch takes; a host mostly runs far below
that. Here the generator offers a fixed rate and two figures are read:

- `cpu`: ringwatch's CPU time (utime + stime from /proc) per quiet open (`--quiet-path`,
  passes the kernel filter, matches no rule) at 5k and 25k opens/s, over one window.
- `latency`: for alerting opens (`--watched-path`, rule "Read sensitive file untrusted")
  at 20/s, the time from the open (the alert's `evt.ts`, the kernel's clock moved to wall
  time) to its alert line appearing in ringwatch's stdout, watched every millisecond by
  this process: p50, p99 and max over the window; alone, and beside quiet opens at 10k/s.

Each is run twice: with the default config (syscall records wake ringwatch once per
`sensor.wakeup_records` (256) per CPU, the rest wait at most `sensor.poll_timeout_ms`)
and with a wake-up for every record (`wakeup_records: 1`, libbpf's own way). Coalescing
and throttling are off, as in the throughput trials: the generator repeats one open.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench import procfs, ringwatch, workloads
from bench.context import Context, ringwatch_config
from bench.daemons import RunningMonitor
from bench.errors import BenchError

ALERT_RULE = "Read sensitive file untrusted"
CPU_RATES = (5_000, 25_000)
ALERT_RATE = 20
BACKGROUND_RATE = 10_000
SENSOR = {"coalesce_window_ms": 0, "throttle_process_rate": 0, "throttle_cgroup_rate": 0}
VARIANTS: dict[str, dict[str, Any]] = {
    "batched wake-ups (default)": {},
    "a wake-up per record": {"wakeup_records": 1},
}


class AlertWatch:
    """Tails a file of JSON alert lines; for each alert of `rule` by `pid`, the ms between
    its event and the moment this thread saw the line."""

    def __init__(self, path: Path, rule: str) -> None:
        self.path, self.rule = path, rule
        self.pid = -1
        self.delays_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> AlertWatch:
        self._thread.start()
        return self

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return self.delays_ms

    def _run(self) -> None:
        pos, partial = 0, b""
        while not self._stop.is_set():
            time.sleep(0.001)
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
            except FileNotFoundError:
                continue
            if not chunk:
                continue
            seen_ns = time.time_ns()
            pos += len(chunk)
            *lines, partial = (partial + chunk).split(b"\n")
            for line in lines:
                delay = self.delay_ms(line, seen_ns)
                if delay is not None:
                    self.delays_ms.append(delay)

    def delay_ms(self, line: bytes, seen_ns: int) -> float | None:
        if self.rule.encode() not in line:
            return None
        try:
            alert = json.loads(line)
        except json.JSONDecodeError:
            return None
        event = alert.get("event", {}) if isinstance(alert, dict) else {}
        if alert.get("rule") != self.rule or event.get("proc.pid") != self.pid:
            return None
        ts = event.get("evt.ts")
        return (seen_ns - ts) / 1e6 if isinstance(ts, int) else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _monitor(ctx: Context, workdir: Path, overrides: dict[str, Any]) -> RunningMonitor:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = ringwatch_config(workdir, ctx.cgroup)
    cfg["sensor"] = {**cfg.get("sensor", {}), **SENSOR, **overrides}
    config = workdir / "ringwatch.yaml"
    config.write_text(yaml.safe_dump(cfg))
    # Alerts go to stdout: keep it.
    return RunningMonitor(ringwatch.spec(ctx.python, config, None, ctx.rules, keep_stdout=True), workdir)


def cpu_trial(ctx: Context, mon: RunningMonitor, rate: int) -> dict[str, Any]:
    before = procfs.sample(mon.pid)
    gen = workloads.finish_gen(workloads.start_gen(ctx.gen_bin, "open", rate, ctx.settings.window_s,
                                                   ctx.quiet_open_path))
    after = procfs.sample(mon.pid)
    return {"rate": rate, "opens": gen.ops, "generator_ops_per_s": round(gen.ops_per_s),
            "cpu_us_per_event": (after.cpu_s - before.cpu_s) * 1e6 / max(gen.ops, 1)}


def latency_trial(ctx: Context, mon: RunningMonitor, background: int) -> dict[str, Any]:
    watch = AlertWatch(mon.stdout_path, ALERT_RULE).start()
    quiet = (workloads.start_gen(ctx.gen_bin, "open", background, ctx.settings.window_s + 1,
                                 ctx.quiet_open_path) if background else None)
    try:
        proc = workloads.start_gen(ctx.gen_bin, "open", ALERT_RATE, ctx.settings.window_s,
                                   ctx.interesting_open_path)
        watch.pid = proc.pid
        gen = workloads.finish_gen(proc)
        if quiet is not None:
            workloads.finish_gen(quiet)
        time.sleep(1.0)  # the last alerts' longest wait is a poll timeout
    finally:
        delays = watch.stop()
    return {"alert_rate": ALERT_RATE, "background_opens_per_s": background, "opens": gen.ops,
            "alerts_seen": len(delays), "p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99),
            "max_ms": max(delays) if delays else None}


def run(ctx: Context, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {"window_s": ctx.settings.window_s, "variants": []}
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        log(f"fixed rates: {name}")
        mon = _monitor(ctx, ctx.workdir / f"fixed-{i}", overrides)
        try:
            mon.start()
            cpu = [cpu_trial(ctx, mon, r) for r in CPU_RATES]
            latency = [latency_trial(ctx, mon, b) for b in (0, BACKGROUND_RATE)]
            rc = mon.stop()
        finally:
            mon.kill()
        if rc != 0:
            raise BenchError(f"ringwatch exited {rc} during the fixed-rate trials:\n" + mon.stderr()[-2000:])
        stopped = ringwatch.log_entry(mon.stderr(), "stopped")
        lost = ringwatch.losses(stopped) if stopped is not None else {}
        out["variants"].append({"variant": name, "sensor_overrides": overrides, "cpu": cpu,
                                "latency": latency, "lost": sum(lost.values())})
    return out
