"""Tails of coalescing entries: repeats the kernel folded and no later record carried.

The kernel reports an entry's repeats with the next identical record after the window.
When none comes (the flood stopped), the repeats would stay in the map until evicted;
userspace reads entries idle for a whole window, rebuilds the record from the entry's
key (which holds the record's bytes) and reports the repeats as a count-only record,
then deletes the entry.

Race, documented: a repeat that arrives in the microseconds between reading an idle
entry and deleting it is counted by the kernel's next record as well. The per-lane
accounting (flood_stats) does not depend on this and stays exact.
"""

from __future__ import annotations

import ctypes as ct
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.kernel.records import (
    SC_BODY_LEN,
    SC_BODY_OFF,
    SC_F_COUNT_ONLY,
    CCoalKey,
    CCoalVal,
    CSyscall,
    RecordType,
    SyscallRecord,
    decode_bytes,
    wire,
)


@dataclass(frozen=True, slots=True)
class Tail:
    key: CCoalKey
    record: SyscallRecord


def rebuild(key: CCoalKey, val: CCoalVal) -> SyscallRecord:
    """The syscall record an entry stands for, reporting its pending repeats."""
    buf = CSyscall()
    ct.memmove(ct.addressof(buf) + SC_BODY_OFF, ct.addressof(key.body), SC_BODY_LEN)
    h = buf.h
    h.type = RecordType.SYSCALL
    h.cpu = val.cpu
    h.ktime_ns = val.last_ns
    h.pid = val.tid
    h.tgid = key.tgid
    h.ppid = val.ppid
    h.uid = key.uid
    h.gid = key.gid
    h.cgroup_id = key.cgroup_id
    h.start_ns = val.start_ns
    h.comm = key.comm
    buf.count = val.pending
    buf.first_ns = val.first_ns
    buf.flags |= SC_F_COUNT_ONLY
    rec = decode_bytes(wire(buf))
    assert isinstance(rec, SyscallRecord)
    return rec


def idle_tails(
    entries: Iterable[tuple[CCoalKey, CCoalVal]], now_ns: int, window_ns: int
) -> tuple[list[Tail], list[CCoalKey]]:
    """Entries idle for a whole window: the tails to report and every key to delete."""
    tails: list[Tail] = []
    stale: list[CCoalKey] = []
    for key, val in entries:
        if now_ns - max(val.last_ns, val.window_ns) <= window_ns:
            continue
        stale.append(key)
        if val.pending:
            tails.append(Tail(key, rebuild(key, val)))
    return tails, stale
