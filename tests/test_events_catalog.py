"""The event catalogue is the contract: numbers the kernel agrees with, fields every event keeps to."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.events.catalog import CATALOG, CATALOGUE, FIELDS, Catalogue, EventType, FilterRole, describe
from monitor.events.decode import Decode
from monitor.events.enrich import Enrich
from monitor.events.fields import COALESCE, COMMON, CONTAINER, LINEAGE, RESULT, Field
from monitor.kernel.records import (
    SC_F_BASE,
    SC_F_SOCKET,
    DenyHook,
    DenyRecord,
    ExecRecord,
    ExitRecord,
    ForkRecord,
    Header,
    RecordType,
    SyscallRecord,
    ThrottleRecord,
    ThrottleScope,
)
from monitor.stage import Item

REPO = Path(__file__).resolve().parent.parent
# The kernel's own x86_64 syscall table, as Debian's linux-libc-dev ships it.
UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")


def _h(kind: RecordType) -> Header:
    return Header(kind, 0, 1, 10, 10, 1, 0, 0, 1, 5, "x")


def _kernel_numbers() -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"#define __NR_(\w+) (\d+)", UNISTD.read_text())}


# Syscalls newer than Debian 12's headers (6.1): checked against the running kernel by
# making them (test_newer_syscalls_do_what_their_names_say) until the header has them.
NEWER_THAN_HEADER = {"fchmodat2": 452, "setxattrat": 463, "removexattrat": 466}


def test_syscall_numbers_are_the_kernels() -> None:
    kernel = _kernel_numbers()
    assert len(kernel) > 300, "unistd_64.h not parsed"
    ours = CATALOGUE.syscalls()
    assert ours, "no syscalls in the catalogue"
    wrong = {name: (nr, kernel.get(name)) for name, nr in ours.items()
             if kernel.get(name) != nr and not (name not in kernel and NEWER_THAN_HEADER.get(name) == nr)}
    assert wrong == {}


def test_newer_syscalls_do_what_their_names_say(tmp_path: Path) -> None:
    """The numbers the header lacks, made on the running kernel: 452 changes a mode as
    fchmodat2 does, 463/466 set and remove an xattr as setxattrat/removexattrat do."""
    import ctypes
    import os
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ours = CATALOGUE.syscalls()
    assert {n: ours[n] for n in NEWER_THAN_HEADER} == NEWER_THAN_HEADER
    f = tmp_path / "f"
    f.write_text("")
    os.chmod(f, 0o600)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        L = ctypes.c_long
        assert libc.syscall(L(ours["fchmodat2"]), L(dfd), b"f", L(0o640), L(0)) == 0
        assert f.stat().st_mode & 0o777 == 0o640
        value = ctypes.create_string_buffer(b"v")
        args = struct.pack("<QII", ctypes.addressof(value), 1, 0)
        assert libc.syscall(L(ours["setxattrat"]), L(dfd), b"f", L(0), b"user.t", args, L(len(args))) == 0
        assert os.getxattr(f, "user.t") == b"v"
        assert libc.syscall(L(ours["removexattrat"]), L(dfd), b"f", L(0), b"user.t") == 0
        assert "user.t" not in os.listxattr(f)
    finally:
        os.close(dfd)


def test_a_wrong_number_is_caught() -> None:
    """The comparison above is not vacuous: a catalogue with one number off disagrees."""
    bad = Catalogue((EventType("x", RecordType.SYSCALL, lambda *a: None, (), types={"openat": 258}),))
    assert bad.syscalls()["openat"] != _kernel_numbers()["openat"]


def test_kernel_programs_use_only_catalogue_numbers() -> None:
    """bpf/ declares no syscall number of its own; every RW_NR_x it names comes from a -D define."""
    defined = {d.split("=")[0].removeprefix("-D") for d in CATALOGUE.kernel_defines()}
    for src in (REPO / "bpf").glob("*.[ch]"):
        text = src.read_text()
        assert not re.search(r"#define RW_NR_[a-z]", text), f"{src.name} defines a syscall number"
        used = set(re.findall(r"\bRW_NR_[a-z]\w*", text))
        assert used <= defined, (src.name, used - defined)


def test_event_types_and_numbers_are_declared_once() -> None:
    names = [n for e in CATALOG for n in e.types]
    assert len(names) == len(set(names))
    try:
        Catalogue((*CATALOG, EventType("again", RecordType.SYSCALL, lambda *a: None, (), types={"open": 2})))
    except ValueError as exc:
        assert "'open'" in str(exc)
    else:
        raise AssertionError("a second declaration of open was accepted")


def test_a_field_declared_with_two_types_is_refused() -> None:
    cat = Catalogue((
        EventType("a", RecordType.SYSCALL, lambda *a: None, (Field("evt.arg.z", int, ""),), types={"a": 1}),
        EventType("b", RecordType.SYSCALL, lambda *a: None, (Field("evt.arg.z", str, ""),), types={"b": 3}),
    ))
    try:
        cat.fields()
    except ValueError as exc:
        assert "evt.arg.z" in str(exc)
    else:
        raise AssertionError("conflicting field types accepted")


def _records_of(entry: EventType) -> list[object]:
    if entry.record is RecordType.EXEC:
        return [ExecRecord(_h(RecordType.EXEC), 0, nr, "/bin/x", ["x", "-y"], -100, 0, False, False,
                           False, False) for nr in entry.types.values() if nr is not None]
    if entry.record is RecordType.FORK:
        return [ForkRecord(_h(RecordType.FORK), 9, 9, 3)]
    if entry.record is RecordType.EXIT:
        return [ExitRecord(_h(RecordType.EXIT), 1, 0)]
    if entry.record is RecordType.THROTTLE:
        return [ThrottleRecord(_h(RecordType.THROTTLE), s, 257, 10, 2000, 30000) for s in ThrottleScope]
    if entry.record is RecordType.DENY:
        return [DenyRecord(_h(RecordType.DENY), hook, 1, -1, False, "/x", 2, 80, bytes(4), [(1, "init")])
                for hook in DenyHook]
    out: list[object] = []
    for nr in entry.types.values():
        assert nr is not None
        for flags, family in ((0, 2), (SC_F_SOCKET | SC_F_BASE, 10), (SC_F_SOCKET, 1)):
            out.append(SyscallRecord(_h(RecordType.SYSCALL), nr, 3, (1, 2, 3, 4, 5, 6), flags, family,
                                     80, bytes(16), "tmpfs", "rel/a", "b", "/base" if flags else None))
    return out


def test_each_family_sets_only_the_fields_it_declares() -> None:
    decode, enrich = Decode(), Enrich()
    common = {f.name for f in (*COMMON, *LINEAGE, *RESULT, *CONTAINER)} | {"fd.name_truncated"}
    seen: set[str] = set()
    for entry in CATALOG:
        declared = common | {f.name for f in entry.fields}
        if entry.record is RecordType.SYSCALL:
            declared |= {f.name for f in COALESCE}
        records = _records_of(entry)
        assert records, entry.family
        for rec in records:
            item = Item(rec)  # type: ignore[arg-type]
            decode(item)
            enrich(item)
            assert item.event["evt.type"] in entry.types
            undeclared = set(item.event) - declared
            assert not undeclared, (entry.family, undeclared)
            seen |= set(item.event)
    assert set(seen) <= set(FIELDS)
    assert {"fd.name", "evt.arg.request", "evt.arg.cmd", "fd.rip", "evt.arg.target", "enforce.op"} <= seen


def test_kernel_filter_roles() -> None:
    assert CATALOGUE.types_with_role(FilterRole.OPEN_PATH) == {"open", "openat", "openat2"}
    assert CATALOGUE.types_with_role(FilterRole.PROCESS) == {"execve", "execveat", "fork", "exit", "throttle"}
    # exec is recorded whatever the rules say: the per-syscall filter never decides on it.
    assert 59 not in CATALOGUE.wanted_numbers(None)
    assert CATALOGUE.wanted_numbers({"openat", "execve", "nosuch"}) == {257}


def test_rules_fields_lists_who_sets_a_field() -> None:
    by_name = {d["name"]: d for d in describe()}
    assert by_name["evt.arg.request"]["events"] == ["ptrace"]
    assert by_name["proc.pid"]["events"] == []
    assert set(by_name["fd.name"]["events"]) >= {"open", "connect", "memfd", "enforce"}
