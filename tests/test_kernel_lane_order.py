"""The sensor's two lanes, drained in causal order (pure logic over stand-in rings).

The lanes are merged by time. A process record (exec, fork) committed while the syscall
lane is being consumed may be what a later syscall record's process became before that
syscall: `sh -c 'exec python3 ...'` whose child opens a file must be judged after the
exec (seen live: an exec record written 30 ms after its child's opens). And a syscall
made just before an exec (PTRACE_TRACEME, then exec) belongs to the old image, even if
the exec's record is read first. The rings here are lists; the positions are what the
sensor reads (bytes not yet consumed), as on the real position pages.
"""

from __future__ import annotations

import ctypes as ct
from typing import Any, cast

from monitor.config import SensorConfig
from monitor.kernel.lanes import PROCESS, SYSCALL
from monitor.kernel.records import CFork, CSyscall, Record, RecordType, wire
from monitor.kernel.sensor import POLL_BUDGET, Sensor


class ListRing:
    """A ring: consume() hands records to the callback in order until one returns < 0."""

    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.callback: Any = None

    def consume(self) -> None:
        while self.queue:
            raw = self.queue.pop(0)
            buf = ct.create_string_buffer(raw, len(raw))
            if self.callback(None, ct.addressof(buf), len(raw)) < 0:
                break

    def fill(self) -> int:
        return sum(len(r) for r in self.queue)


def syscall(pid: int, ktime_ns: int) -> bytes:
    r = CSyscall()
    r.h.type, r.h.pid, r.h.tgid, r.h.ktime_ns, r.nr = RecordType.SYSCALL, pid, pid, ktime_ns, 257
    return wire(r)


def fork(pid: int, ktime_ns: int) -> bytes:
    f = CFork()
    f.h.type, f.h.pid, f.h.tgid, f.h.ktime_ns = RecordType.FORK, pid, pid, ktime_ns
    return bytes(f)


def drain(syscalls: list[bytes], commit_after: int, late: bytes) -> list[tuple[str, int]]:
    """Records in the order the sensor handled them; `late` is committed to the process
    lane while the syscall record of pid `commit_after` is being handled."""
    seen: list[tuple[str, int]] = []
    rings = {PROCESS: ListRing(), SYSCALL: ListRing()}

    def on_record(rec: Record) -> None:
        seen.append((rec.h.type.name, rec.h.pid))
        if rec.h.type is RecordType.SYSCALL and rec.h.pid == commit_after:
            rings[PROCESS].queue.append(late)

    sensor = Sensor(SensorConfig(), on_record)
    rings[PROCESS].callback = sensor._process_callback
    rings[SYSCALL].callback = sensor._syscall_callback
    sensor._managers = cast(Any, rings)
    sensor._positions = cast(Any, rings)
    rings[SYSCALL].queue.extend(syscalls)
    sensor._budget = POLL_BUDGET
    sensor._drain_lanes()
    return seen


def test_a_process_record_committed_mid_chunk_goes_before_later_syscalls() -> None:
    seen = drain([syscall(1, 10), syscall(2, 30), syscall(3, 40)], commit_after=1, late=fork(9, 20))
    assert seen == [("SYSCALL", 1), ("FORK", 9), ("SYSCALL", 2), ("SYSCALL", 3)]


def test_a_syscall_made_before_a_process_record_goes_first_though_read_after() -> None:
    seen = drain([syscall(1, 10), syscall(2, 20), syscall(3, 40)], commit_after=1, late=fork(9, 30))
    assert seen == [("SYSCALL", 1), ("SYSCALL", 2), ("FORK", 9), ("SYSCALL", 3)]


def test_process_records_after_the_last_syscall_are_handed_on_too() -> None:
    seen = drain([syscall(1, 10)], commit_after=1, late=fork(9, 20))
    assert seen == [("SYSCALL", 1), ("FORK", 9)]


def test_every_record_is_handled_once_whatever_the_interleaving() -> None:
    seen = drain([syscall(i, 10 * i) for i in range(1, 1200)], commit_after=700, late=fork(9, 7005))
    assert [p for t, p in seen if t == "SYSCALL"] == list(range(1, 1200))
    assert seen.index(("FORK", 9)) == 700  # after syscall 700 (t=7000), before 701
