"""Records/s through the userspace pipeline (decode, lineage, enrich, judge, emit), no kernel.

`python -m bench.pipeline_rate`: synthetic records of three kinds go through
monitor.pipeline.Pipeline with the default rules and no outputs, in this process:
opens that match no rule, opens of /etc/shadow by `cat` (they alert), and execs. Each is
measured twice: from decoded records (`records_per_s`, the pipeline alone) and from the
raw ring-buffer bytes the kernel writes (`raw_records_per_s`: monitor.kernel.records.decode
on a pointer, as the sensor's callback calls it, then the pipeline). Reports the best of
--rounds in CPU time of this process (a busy neighbour core skews wall time more), as
JSON on the last stdout line. It isolates the Python cost per record from the kernel and
the ring buffer (bench.throughput measures end to end). `--profile KIND` prints a
cProfile of one round instead.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes as ct
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor import paths
from monitor.events.catalog import FIELD_TYPES
from monitor.kernel import records as krec
from monitor.kernel.records import ExecRecord, Header, RecordType, SyscallRecord
from monitor.lineage.cache import Lineage
from monitor.pipeline import Pipeline
from monitor.rules import RuleSources, load

OPENAT = 257
KINDS = ("quiet_open", "alerting_open", "exec")
ROOT_CAPS = (1 << 41) - 1  # CAP_CHOWN .. CAP_CHECKPOINT_RESTORE


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


def _raw(kind: str, n: int) -> list[ct.Array[ct.c_char]]:
    """The same records as the kernel writes them (bpf/records.h), one buffer each."""
    out: list[ct.Array[ct.c_char]] = []
    for i in range(n):
        if kind == "exec":
            e = krec.CExec()
            _header(e.h, RecordType.EXEC, 1000 + i, 4000 + i, 5_000_000 + i, b"true")
            e.syscall_nr, e.dirfd = 59, -100
            e.filename = b"/usr/bin/true"
            args = b"true\0" + str(i).encode() + b"\0"
            ct.memmove(ct.addressof(e) + krec.CExec.args.offset, args, len(args))  # NULs included
            e.argc, e.args_len = 2, len(args)
            e.cap_effective = e.cap_permitted = ROOT_CAPS
            raw = bytes(e)
        else:
            r = krec.CSyscall()
            comm, path = (b"cat", b"/etc/shadow") if kind == "alerting_open" else (b"python3", b"/etc/passwd")
            _header(r.h, RecordType.SYSCALL, 1000 + i, 77, 5_000_000, comm)
            r.nr, r.ret, r.count, r.first_ns = OPENAT, 3, 1, 1000 + i
            r.args[0] = 2**32 - 100
            r.path = path
            # A root process's capability sets, as most events on a host carry them.
            r.cap_effective = r.cap_permitted = ROOT_CAPS
            # A successful open's record carries the file the kernel resolved, as live.
            r.kpath, r.flags = path, krec.SC_F_RESOLVED
            raw = krec.wire(r)  # the ring's form of a syscall record
        out.append(ct.create_string_buffer(raw, len(raw)))
    return out


def _header(h: krec.CHeader, rtype: RecordType, ktime: int, tgid: int, start: int, comm: bytes) -> None:
    h.type, h.ktime_ns, h.pid, h.tgid, h.ppid = rtype, ktime, tgid, tgid, 1
    h.cgroup_id, h.start_ns, h.comm = 1, start, comm


def _pipeline(rules: object) -> Pipeline:
    pipe = Pipeline(rules, [], [])  # type: ignore[arg-type]
    pipe.lineage.lineage = Lineage(None, 10, 65536, 10_000_000)
    # The opener and its parent exec'd before (as a live host's processes have): the
    # lineage knows them, so every open gets its ancestry, as it does live. (Until
    # 2026-12-01 the opener was unknown, which left lineage out of the opens' cost.)
    for tgid, ppid, start, comm, exe in ((70, 1, 4_000_000, "bash", "/usr/bin/bash"),
                                         (77, 70, 5_000_000, "python3", "/usr/bin/python3")):
        h = Header(RecordType.EXEC, 0, 900, tgid, tgid, ppid, 0, 0, 1, start, comm)
        pipe(ExecRecord(h, 0, 59, exe, [comm, "-u"], -100, 0, False, False, False, False))
    return pipe


def _round(kind: str, n: int, rules: object, raw: bool) -> tuple[float, int]:
    pipe = _pipeline(rules)
    if raw:
        bufs = _raw(kind, n)
        decode = krec.decode
        t0 = time.process_time()
        for b in bufs:
            pipe(decode(ct.addressof(b), len(b)))
    else:
        recs = _records(kind, n)
        t0 = time.process_time()
        for rec in recs:
            pipe(rec)  # type: ignore[arg-type]
    rate = n / (time.process_time() - t0)
    return rate, sum(pipe.emit.alert_counts.values())


def measure(kind: str, n: int, rounds: int) -> dict[str, float]:
    rules = load(RuleSources(default_dir=paths.rules_dir(), fields=FIELD_TYPES))
    best = best_raw = 0.0
    alerts = 0
    for _ in range(rounds):
        rate, alerts = _round(kind, n, rules, raw=False)
        best = max(best, rate)
        best_raw = max(best_raw, _round(kind, n, rules, raw=True)[0])
    return {"records_per_s": round(best), "raw_records_per_s": round(best_raw),
            "alerts_per_record": round(alerts / n, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile", choices=KINDS, help="print a cProfile of one raw round of this kind")
    args = p.parse_args()
    if args.profile:
        rules = load(RuleSources(default_dir=paths.rules_dir(), fields=FIELD_TYPES))
        prof = cProfile.Profile()
        prof.runcall(_round, args.profile, args.records, rules, True)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    out = {k: measure(k, args.records, args.rounds) for k in KINDS}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
