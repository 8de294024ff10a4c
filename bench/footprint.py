"""Footprint of an idle ringwatch: start-up time, RSS, CPU, locked BPF memory.

The same run also probes which interesting events ringwatch produces, so the
throughput search can pick its workload without another start-up.
"""

from __future__ import annotations

import time
from typing import Any

from bench import bpftool, procfs, ringwatch, workloads
from bench.context import Context
from bench.daemons import RunningMonitor
from bench.errors import BenchError

OPEN_TYPES = frozenset({"open", "openat", "openat2"})
EXEC_TYPES = frozenset({"execve", "execveat"})


def bpf_memory(pid: int) -> dict[str, Any]:
    """Locked memory of the maps and programs the process holds, named as bpftool names them."""
    objs = procfs.bpf_objects(pid)
    names = bpftool.map_show()
    maps = []
    for o in objs:
        if o.kind != "map":
            continue
        info = names.get(o.id)
        maps.append({
            "id": o.id,
            "name": info.name if info else "",
            "type": info.type if info else "",
            "max_entries": info.max_entries if info else 0,
            # fdinfo and bpftool read the same kernel counter; bpftool's if it has the map.
            "bytes_memlock": info.bytes_memlock if info else o.memlock,
        })
    progs = [o for o in objs if o.kind == "prog"]
    links = [o.detail for o in objs if o.kind == "link"]
    return {
        "maps": maps,
        "map_bytes_memlock": sum(m["bytes_memlock"] for m in maps),
        "progs": len(progs),
        "prog_bytes_memlock": sum(p.memlock for p in progs),
        "links": links,
    }


def open_burst(ctx: Context) -> int:
    """A short burst of opens of the watched file; the pid that made them."""
    gen = workloads.start_gen(ctx.gen_bin, "open", 2000, 0.5, ctx.interesting_open_path)
    return workloads.finish_gen(gen).pid


def run(ctx: Context, log: Any) -> dict[str, Any]:
    s = ctx.settings
    workdir = ctx.workdir / "footprint"
    record = workdir / "events.jsonl"
    mon = RunningMonitor(ringwatch.spec(ctx.python, ctx.config, record, ctx.rules), workdir)
    log("footprint: starting ringwatch")
    try:
        mon.start()
        ready = ringwatch.log_entry(mon.stderr(), "ready") or {}
        time.sleep(1.0)  # let start-up work (first poll, caches) settle before "idle"
        a = procfs.sample(mon.pid)
        t0 = time.monotonic()
        time.sleep(s.idle_s)
        b = procfs.sample(mon.pid)
        rss_parts = procfs.rss_by_mapping(mon.pid)
        idle_cpu = (b.cpu_s - a.cpu_s) / (time.monotonic() - t0)
        mem = bpf_memory(mon.pid)
        log("footprint: probing for open events")
        gen_pid = open_burst(ctx)
        time.sleep(0.5)
        if mon.stop() != 0:
            raise BenchError("ringwatch exited non-zero:\n" + mon.stderr()[-2000:])
    finally:
        mon.kill()
    stopped = ringwatch.log_entry(mon.stderr(), "stopped") or {}
    opens = ringwatch.count_events_in(record, "proc.pid", gen_pid, OPEN_TYPES)
    record.unlink(missing_ok=True)
    return {
        "ready_wall_s": mon.ready_s,
        "startup_s_logged": ready.get("startup_s"),
        "idle_window_s": s.idle_s,
        "idle_cpu_fraction": idle_cpu,
        "idle_rss_bytes": b.rss_bytes,
        "peak_rss_bytes": b.hwm_bytes,
        "idle_rss_by_mapping": rss_parts,
        "bpf": mem,
        "stop_s": mon.stop_s,
        "losses": ringwatch.losses(stopped) if stopped else None,
        "open_events_seen": opens,
    }
