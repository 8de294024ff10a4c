"""Overhead: the same syscall loops with no monitor, ringwatch, syscount-bpfcc and the
no-op floor, in alternating rounds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from bench import daemons, procfs, ringwatch, stats, workloads
from bench.context import Context
from bench.daemons import MonitorSpec, RunningMonitor
from bench.errors import BenchError

LOOPS = ("open", "getppid", "forkexec")
CONDITIONS = ("none", "ringwatch", "syscount", "floor")


def _spec(ctx: Context, cond: str) -> MonitorSpec:
    if cond == "ringwatch":
        return ringwatch.spec(ctx.python, ctx.config, rules=ctx.rules)
    if cond == "syscount":
        return daemons.syscount_spec()
    if cond == "floor":
        return daemons.floor_spec(ctx.python)
    raise BenchError(f"unknown condition {cond!r}")


@contextlib.contextmanager
def _monitor(ctx: Context, cond: str, rnd: int) -> Iterator[RunningMonitor | None]:
    if cond == "none":
        yield None
        return
    mon = RunningMonitor(_spec(ctx, cond), ctx.workdir / f"overhead-{rnd}")
    try:
        yield mon.start()
    finally:
        mon.kill()


def _loop(ctx: Context, name: str) -> workloads.LoopResult:
    s = ctx.settings
    if name == "open":
        return workloads.run_loop(ctx.loop_bin, "open", s.open_n, ctx.open_path)
    if name == "getppid":
        return workloads.run_loop(ctx.loop_bin, "getppid", s.getppid_n)
    return workloads.run_loop(ctx.loop_bin, "forkexec", s.forkexec_n, ctx.exec_path)


def _check_watched(ctx: Context, cond: str, mon: RunningMonitor, losses: dict[str, int]) -> None:
    """Proof that the monitor really watched the loops, so no ratio comes from a monitor
    that silently saw nothing."""
    if cond == "ringwatch":
        stopped = ringwatch.log_entry(mon.stderr(), "stopped")
        if stopped is None:
            raise BenchError("ringwatch stopped without its 'stopped' log line:\n" + mon.stderr()[-2000:])
        # Produced, not delivered: records lost under load are counted in losses and
        # reported; what proves the sensor was attached is that the kernel side saw them.
        execs = int(stopped.get("produced", {}).get("exec", 0))
        if execs < ctx.settings.forkexec_n:
            raise BenchError(
                f"ringwatch's kernel side saw {execs} execs during {ctx.settings.forkexec_n} execs"
            )
        losses.update({k: losses.get(k, 0) + v for k, v in ringwatch.losses(stopped).items()})
    if cond == "syscount" and "getppid" not in mon.stdout():
        raise BenchError("syscount-bpfcc's summary does not list getppid:\n" + mon.stdout()[-2000:])


def _counts(snap: dict[str, Any]) -> tuple[int, int]:
    """(records produced, whole records lost) so far, from a `ringwatch stats` snapshot."""
    return sum(snap.get("produced", {}).values()), sum(ringwatch.stats_losses(snap).values())


def run(ctx: Context, log: Any) -> dict[str, Any]:
    ns: dict[str, dict[str, list[float]]] = {loop: {c: [] for c in CONDITIONS} for loop in LOOPS}
    # Monitor CPU time during a loop, as a fraction of the loop's wall time: work the
    # monitor does on the other core does not show in the loop's time, but the host pays it.
    mon_cpu: dict[str, dict[str, list[float]]] = {loop: {c: [] for c in CONDITIONS[1:]} for loop in LOOPS}
    ready_s: dict[str, list[float]] = {c: [] for c in CONDITIONS[1:]}
    rss: dict[str, list[int]] = {c: [] for c in CONDITIONS[1:]}
    losses: dict[str, int] = {}
    # ringwatch's records produced and lost while each loop ran (kernel drops happen at
    # submit time, so they are final when the loop ends), summed over rounds.
    per_loop: dict[str, dict[str, int]] = {loop: {"produced": 0, "lost": 0} for loop in LOOPS}
    # Untimed warm-up: the first run after a build pays for page cache and dentries.
    for loop in LOOPS:
        _loop(ctx, loop)
    for rnd, cond in stats.schedule(CONDITIONS, ctx.settings.rounds):
        log(f"overhead round {rnd + 1}/{ctx.settings.rounds}: {cond}")
        with _monitor(ctx, cond, rnd) as mon:
            for loop in LOOPS:
                before = procfs.sample(mon.pid) if mon else None
                snap0 = ringwatch.stats(ctx.control_socket) if cond == "ringwatch" else None
                res = _loop(ctx, loop)
                snap1 = ringwatch.stats(ctx.control_socket) if snap0 else None
                if snap0 and snap1:
                    (p0, l0), (p1, l1) = _counts(snap0), _counts(snap1)
                    per_loop[loop]["produced"] += p1 - p0
                    per_loop[loop]["lost"] += l1 - l0
                ns[loop][cond].append(res.ns_per_iter)
                # CPU time is counted in clock ticks: a loop shorter than ~25 ticks would
                # give a share of a core that is mostly rounding.
                if mon and before and res.elapsed_ns >= 25e9 / procfs.CLK_TCK:
                    after = procfs.sample(mon.pid)
                    mon_cpu[loop][cond].append((after.cpu_s - before.cpu_s) / (res.elapsed_ns / 1e9))
            if mon:
                ready_s[cond].append(mon.ready_s)
                rss[cond].append(procfs.sample(mon.pid).rss_bytes)
                rc = mon.stop()
                if rc != 0 and cond != "syscount":
                    raise BenchError(f"{cond} exited {rc}:\n" + mon.stderr()[-2000:])
                _check_watched(ctx, cond, mon, losses)
    return {
        "iterations": {"open": ctx.settings.open_n, "getppid": ctx.settings.getppid_n,
                       "forkexec": ctx.settings.forkexec_n},
        "ns_per_iter": {loop: {c: asdict(s) for c, s in stats.summarize(ns[loop], "none").items()}
                        for loop in LOOPS},
        "monitor_cpu_fraction": {loop: {c: stats.median(v) if v else None for c, v in per.items()}
                                 for loop, per in mon_cpu.items()},
        "ready_s": {c: stats.median(v) for c, v in ready_s.items()},
        "rss_bytes": {c: int(stats.median(v)) for c, v in rss.items()},
        "ringwatch_losses": losses,
        "ringwatch_records_per_loop": per_loop,
    }
