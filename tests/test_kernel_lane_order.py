"""The sensor's two lanes, drained in causal order (pure logic over stand-in rings).

A process record (exec, fork) committed while the syscall lane is being consumed may be
what a later syscall record's process became before that syscall: `sh -c 'exec python3
...'` whose child opens a file. Its open must reach the lineage after the exec, or the
child is judged with its parent's old image (seen live: an exec record written to the
record file 30 ms after its child's opens). The rings here are lists; the positions are
what the sensor reads (bytes not yet consumed), as on the real position pages.
"""

from __future__ import annotations

import ctypes as ct
from typing import Any, cast

from monitor.config import SensorConfig
from monitor.kernel.lanes import PROCESS, SYSCALL
from monitor.kernel.records import CFork, CSyscall, Record, RecordType
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


def syscall(pid: int) -> bytes:
    r = CSyscall()
    r.h.type, r.h.pid, r.h.tgid, r.nr = RecordType.SYSCALL, pid, pid, 257
    return bytes(r)


def fork(pid: int) -> bytes:
    f = CFork()
    f.h.type, f.h.pid, f.h.tgid = RecordType.FORK, pid, pid
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
    seen = drain([syscall(1), syscall(2), syscall(3)], commit_after=1, late=fork(9))
    assert seen == [("SYSCALL", 1), ("FORK", 9), ("SYSCALL", 2), ("SYSCALL", 3)]


def test_every_record_is_handled_once_whatever_the_interleaving() -> None:
    seen = drain([syscall(i) for i in range(1, 1200)], commit_after=700, late=fork(9))
    assert [p for t, p in seen if t == "SYSCALL"] == list(range(1, 1200))
    assert seen.index(("FORK", 9)) == 700
