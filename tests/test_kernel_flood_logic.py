"""Pure logic of the flood defences: lane accounting, coalescing tails, the throttle alert."""

from __future__ import annotations

import ctypes as ct

from monitor.kernel import coalesce
from monitor.kernel.lanes import PROCESS, SYSCALL, lane_counts
from monitor.kernel.records import SC_BODY_OFF, CCoalKey, CCoalVal, CSyscall
from monitor.service import dropwatch
from monitor.service.stats import LossCounts
from monitor.service.throttlewatch import RULE, ThrottleWatch


def test_lane_counts_split_types_and_losses_by_lane() -> None:
    produced = {"exec": 10, "fork": 5, "exit": 5, "deny": 1, "throttle": 2, "syscall": 1000}
    drops = {"ringbuf_full": 3, "pending_full": 1, "exit_no_enter": 0, "syscall_ringbuf_full": 40,
             "argv_truncated": 7}
    flood = {"coalesced": 900, "throttled_process": 30, "throttled_cgroup": 5}
    lanes = lane_counts(produced, drops, {PROCESS: 19, SYSCALL: 25}, flood)
    p, s = lanes[PROCESS], lanes[SYSCALL]
    assert (p.produced, p.delivered, p.lost, p.coalesced, p.throttled) == (23, 19, 4, 0, 0)
    assert (s.produced, s.delivered, s.lost, s.coalesced, s.throttled) == (1000, 25, 40, 900, 35)
    assert p.unaccounted() == 0 and s.unaccounted() == 0


def _entry(pending: int, last_ns: int, window_ns: int) -> tuple[CCoalKey, CCoalVal]:
    rec = CSyscall()
    rec.nr = 257
    rec.ret = 3
    rec.args[2] = 0o2000000  # O_CLOEXEC
    rec.path = b"/etc/passwd"
    key = CCoalKey(tgid=1234, uid=0, gid=0, cgroup_id=77, exec_id=5, comm=b"flood")
    ct.memmove(ct.addressof(key.body), ct.addressof(rec) + SC_BODY_OFF, ct.sizeof(key.body))
    val = CCoalVal(window_ns=window_ns, pending=pending, first_ns=window_ns + 10, last_ns=last_ns,
                   tid=1235, ppid=1, start_ns=99, cpu=1)
    return key, val


def test_idle_entries_become_count_only_records_and_are_deleted() -> None:
    window = 1_000_000_000
    busy = _entry(pending=50, last_ns=9_900_000_000, window_ns=9_000_000_000)  # active 0.1 s ago
    idle = _entry(pending=7, last_ns=5_000_000_000, window_ns=4_000_000_000)
    idle_empty = _entry(pending=0, last_ns=5_000_000_000, window_ns=5_000_000_000)
    tails, stale = coalesce.idle_tails([busy, idle, idle_empty], 10_000_000_000, window)
    assert len(stale) == 2 and busy[0] not in stale
    assert len(tails) == 1
    rec = tails[0].record
    assert rec.count_only and rec.count == 7
    assert (rec.h.tgid, rec.h.pid, rec.h.ppid, rec.h.cgroup_id, rec.h.comm) == (1234, 1235, 1, 77, "flood")
    assert (rec.first_ns, rec.h.ktime_ns) == (4_000_000_010, 5_000_000_000)
    assert (rec.nr, rec.ret, rec.path) == (257, 3, "/etc/passwd")
    # The flag is userspace's own: it is not left in the decoded flags.
    assert rec.flags == 0


def _throttle_event(pid: int) -> dict[str, object]:
    return {"evt.type": "throttle", "evt.time": "2026-12-01T00:00:00.000000000Z", "proc.pid": pid,
            "proc.name": "flood", "proc.exepath": "/tmp/flood", "proc.cmdline": "flood same",
            "proc.aname": ["flood", "bash", "sshd"], "proc.apid": [42, 10, 1], "throttle.scope": "process",
            "throttle.count": 123, "throttle.rate": 2000, "throttle.burst": 30000}


def test_throttle_alert_names_the_process_once_per_interval() -> None:
    w = ThrottleWatch(min_interval_s=30)
    a = w.notice(_throttle_event(42), now=100.0)
    assert a is not None and a["rule"] == RULE
    assert a["output_fields"]["proc.pid"] == 42 and a["output_fields"]["proc.cmdline"] == "flood same"
    assert "pid 42" in a["output"] and "bash(10) < sshd(1)" in a["output"]
    assert w.notice(_throttle_event(43), now=110.0) is None
    assert w.notice(_throttle_event(44), now=120.0) is None
    b = w.notice(_throttle_event(42), now=131.0)
    assert b is not None and b["output_fields"]["throttled_meanwhile"] == {"43": "flood", "44": "flood"}
    assert w.stats()["alerts"] == 2 and w.stats()["notices"] == 4


def test_drop_alert_carries_each_lane() -> None:
    w = dropwatch.DropWatch(min_interval_s=1)
    w.start(0.0)
    lanes = {"process": {"produced": 10, "delivered": 10, "coalesced": 0, "throttled": 0, "lost": 0},
             "syscall": {"produced": 100, "delivered": 50, "coalesced": 20, "throttled": 10, "lost": 20}}
    alert = w.check(LossCounts({"syscall_ringbuf_full": 20}, {}, lanes), 5.0)
    assert alert is not None
    f = alert["output_fields"]
    assert f["lane.syscall.lost"] == 20 and f["lane.process.lost"] == 0 and f["lane.syscall.coalesced"] == 20
    assert "syscall lane: 20 lost of 100 produced" in alert["output"]
