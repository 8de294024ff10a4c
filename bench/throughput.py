"""Throughput: the highest rate of interesting events ringwatch takes end to end
(decode, lineage, rules, file output) for a whole window with nothing lost.

Interesting events are opens of a watched file once ringwatch records opens, and execs
until then (the footprint run probes which). Each trial starts a fresh ringwatch, so
its counters cover the trial alone.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from bench import procfs, ringwatch, workloads
from bench.context import Context
from bench.daemons import RunningMonitor
from bench.errors import BenchError
from bench.footprint import EXEC_TYPES, OPEN_TYPES
from bench.search import RateSearch, Trial

# The generator "kept up" if it offered at least this share of the target rate.
KEPT_UP = 0.95


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
        if sum(snap.get("events", {}).values()) >= target:
            return time.monotonic() - t0, snap
        if time.monotonic() - t0 > timeout:
            return time.monotonic() - t0, snap
        time.sleep(0.05)
        snap = ringwatch.stats(ctx.control_socket) or snap


def trial(ctx: Context, mode: str, rate: float, n: int) -> tuple[Trial, dict[str, Any]]:
    workdir = ctx.workdir / f"throughput-{n}"
    record = workdir / "events.jsonl"
    mon = RunningMonitor(ringwatch.spec(ctx.python, ctx.config, record, ctx.rules), workdir)
    path = ctx.interesting_open_path if mode == "open" else ctx.exec_path
    try:
        mon.start()
        before = procfs.sample(mon.pid)
        gen = workloads.finish_gen(workloads.start_gen(ctx.gen_bin, mode, rate, ctx.settings.window_s, path))
        after = procfs.sample(mon.pid)
        lag, snap = catch_up(ctx, ctx.settings.lag_limit_s * 2)
        rc = mon.stop()
    finally:
        mon.kill()
    stopped = ringwatch.log_entry(mon.stderr(), "stopped")
    if rc != 0 or stopped is None:
        raise BenchError(f"ringwatch exited {rc} during a throughput trial:\n" + mon.stderr()[-2000:])
    if mode == "open":
        seen = ringwatch.count_events_in(record, "proc.pid", gen.pid, OPEN_TYPES)
    else:
        seen = ringwatch.count_events_in(record, "proc.ppid", gen.pid, EXEC_TYPES)
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


def run(ctx: Context, mode: str, log: Any) -> dict[str, Any]:
    s = ctx.settings
    search = RateSearch(s.start_rate[mode], s.max_doublings, s.bisect_steps)
    details: list[dict[str, Any]] = []
    while (rate := search.next_target()) is not None:
        log(f"throughput trial {len(details) + 1}: {mode} at {rate:,.0f} events/s for {s.window_s:g}s")
        t, d = trial(ctx, mode, rate, len(details))
        log(f"  -> {t.achieved:,.0f}/s {'pass' if t.passed else 'FAIL: ' + t.reason}"
            f"{'' if t.generator_kept_up else ' (generator could not keep up)'}")
        search.record(t)
        details.append(d)
    best = search.best
    path = ("watched file " + ctx.interesting_open_path) if mode == "open" else ctx.exec_path
    best_detail = next((d for d in details if best and d["target"] == best.target), None)
    return {
        "mode": mode,
        "interesting": f"{mode} events of the generator ({path})",
        "window_s": s.window_s,
        "best_events_per_s": best.achieved if best else 0.0,
        "bound": search.bound,
        "first_failure": asdict(search.first_failure) if search.first_failure else None,
        "under_load": {k: best_detail[k] for k in ("cpu_fraction", "rss_bytes", "peak_rss_bytes")}
        if best_detail else None,
        "trials": details,
    }
