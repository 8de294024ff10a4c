"""The field catalog is the contract: every key an event can carry is in it, once."""

from __future__ import annotations

from collections import Counter

from monitor.events import fields
from monitor.events.decode import SYSCALLS
from monitor.events.enrich import Enricher
from monitor.kernel.records import (
    SC_F_BASE,
    SC_F_SOCKET,
    ExecRecord,
    ExitRecord,
    ForkRecord,
    Header,
    RecordType,
    SyscallRecord,
)


def _h(kind: RecordType) -> Header:
    return Header(kind, 0, 1, 10, 10, 1, 0, 0, 1, 5, "x")


def test_names_are_unique() -> None:
    dup = [n for n, c in Counter(f.name for f in fields._FIELDS).items() if c > 1]
    assert dup == []


def test_every_emitted_key_is_a_catalog_field() -> None:
    enr = Enricher()
    records = [
        ExecRecord(_h(RecordType.EXEC), 0, "execve", "/bin/x", ["x", "-y"], -100, 0, False, False,
                   False, False),
        ForkRecord(_h(RecordType.FORK), 9, 9, 3),
        ExitRecord(_h(RecordType.EXIT), 1, 0),
    ]
    for nr in SYSCALLS.values():
        for flags, family in ((0, 2), (SC_F_SOCKET | SC_F_BASE, 10), (SC_F_SOCKET, 1)):
            records.append(SyscallRecord(_h(RecordType.SYSCALL), nr, 3, (1, 2, 3, 4, 5, 6), flags, family,
                                         80, bytes(16), "tmpfs", "rel/a", "b", "/base" if flags else None))
    seen: set[str] = set()
    for rec in records:
        ev = enr.event(rec)
        unknown = set(ev) - set(fields.FIELDS)
        assert not unknown, (rec, unknown)
        seen |= set(ev)
    assert {"fd.name", "evt.arg.request", "evt.arg.cmd", "fd.rip", "evt.arg.target"} <= seen
