"""The coverage decoders on hand-made records: the branches the kernel test reaches only
by circumstance (times UTIME_NOW/OMIT, a refused kill's /proc fallback, a pidfd setns, a
failed bind, a process that has gone), and every field they set is declared."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from monitor.events.catalog import CATALOGUE
from monitor.events.fields import COALESCE, COMMON, CONTAINER, LINEAGE, RESULT
from monitor.events.paths import PathResolver
from monitor.kernel.records import (
    SC_F_LOCAL,
    SC_F_NSFS,
    SC_F_RESOLVED,
    SC_F_TARGET,
    SC_F_TIMES,
    Header,
    RecordType,
    SyscallRecord,
)

NR = CATALOGUE.syscalls()


def _rec(name: str, args: tuple[int, ...], ret: int = 0, flags: int = 0, **kw: Any) -> SyscallRecord:
    h = Header(RecordType.SYSCALL, 0, 1, 4242, 4242, 1, 1000, 1000, 1, 5, "x")
    base: dict[str, Any] = {"family": 0, "port": 0, "addr": bytes(16), "aux": "", "path": "", "path2": ""}
    base.update(kw)
    return SyscallRecord(h, NR[name], ret, (*args, *([0] * (6 - len(args)))), flags, base.pop("family"),
                         base.pop("port"), base.pop("addr"), base.pop("aux"), base.pop("path"),
                         base.pop("path2"), **base)


def _decode(name: str, rec: SyscallRecord, res: PathResolver | None = None) -> dict[str, Any]:
    entry = CATALOGUE.by_type[name]
    ev: dict[str, Any] = {}
    entry.decode(rec, name, ev, res or PathResolver(proc_root="/nonexistent"))
    declared = {f.name for f in entry.fields} | {f.name for f in (*COMMON, *LINEAGE, *RESULT, *CONTAINER,
                                                                   *COALESCE)}
    assert set(ev) <= declared, set(ev) - declared
    return ev


def test_utimensat_times_now_omit_and_chosen() -> None:
    times = struct.pack("<qqqq", 978307200, (1 << 30) - 1, 978307200, 5)
    ev = _decode("utimensat", _rec("utimensat", (-100 & 0xFFFFFFFF, 1, 2, 0x100), flags=SC_F_TIMES,
                                   path="/usr/bin/x", aux_raw=times))
    assert (ev["evt.arg.atime"], ev["evt.arg.mtime"]) == (-1, 978307200_000000005)
    assert ev["evt.arg.flags"] == "AT_SYMLINK_NOFOLLOW"
    omit = struct.pack("<qqqq", 0, (1 << 30) - 2, 0, (1 << 30) - 2)
    ev = _decode("utimensat", _rec("utimensat", (3, 0, 2, 0), flags=SC_F_TIMES | SC_F_RESOLVED,
                                   resolved="/etc/passwd", aux_raw=omit))
    assert (ev["evt.arg.atime"], ev["evt.arg.mtime"], ev["fd.name"], ev["fd.is_resolved"]) == (
        -2, -2, "/etc/passwd", True)
    ev = _decode("utimensat", _rec("utimensat", (-100 & 0xFFFFFFFF, 1, 0, 0), path="/x"))
    assert (ev["evt.arg.atime"], ev["evt.arg.mtime"]) == (-1, -1)  # no times: now


def test_refused_kill_reads_the_target_uid_from_proc(tmp_path: Path) -> None:
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "status").write_text("Name:\tsleep\nUid:\t0\t0\t0\t0\n")
    res = PathResolver(proc_root=str(tmp_path))
    ev = _decode("kill", _rec("kill", (77, 15), ret=-1), res)
    assert (ev["evt.arg.pid"], ev["evt.arg.sig"], ev["evt.target.uid"], ev["evt.target.uid_source"]) == (
        77, "SIGTERM", 0, "procfs")
    ev = _decode("kill", _rec("kill", (78, 9), ret=-1), res)  # gone: unknown, not guessed
    assert (ev["evt.target.uid"], ev["evt.target.uid_source"]) == (-1, "")
    ev = _decode("tgkill", _rec("tgkill", (90, 91, 10), flags=SC_F_TARGET, target=(90, 91, 33)), res)
    assert (ev["evt.arg.pid"], ev["evt.arg.tid"], ev["evt.arg.sig"]) == (90, 91, "SIGUSR1")
    assert (ev["evt.target.pid"], ev["evt.target.uid"], ev["evt.target.uid_source"]) == (90, 33, "kernel")


def test_setns_prefers_the_kernels_namespace_type() -> None:
    ev = _decode("setns", _rec("setns", (5, 0), flags=SC_F_NSFS, aux="pid_for_children"))
    assert (ev["evt.arg.ns"], ev["evt.arg.nstype"]) == ("pid_for_children", "CLONE_NEWPID")
    ev = _decode("setns", _rec("setns", (5, 0x40000000 | 0x00020000)))  # a pidfd: the argument
    assert (ev["evt.arg.ns"], set(ev["evt.arg.nstype"].split("|"))) == ("", {"CLONE_NEWNET", "CLONE_NEWNS"})
    ev = _decode("unshare", _rec("unshare", (0x10000000 | 0x200,)))
    assert set(ev["evt.arg.flags"].split("|")) == {"CLONE_NEWUSER", "CLONE_FS"}


def test_bind_failed_keeps_the_address_asked_for_and_ipv6_local() -> None:
    asked = bytes([10, 0, 0, 1]) + bytes(12)
    ev = _decode("bind", _rec("bind", (4, 0, 16), ret=-98, family=2, port=80, addr=asked))
    assert (ev["fd.lip"], ev["fd.lport"], ev["fd.name"]) == ("10.0.0.1", 80, "10.0.0.1:80")
    ev = _decode("listen", _rec("listen", (4, 128), flags=SC_F_LOCAL, family=10, laddr=bytes(15) + b"\1",
                                lport=8443))
    assert (ev["fd.lip"], ev["fd.sport"], ev["fd.name"], ev["fd.type"]) == ("::1", 8443, "[::1]:8443", "ipv6")
    ev = _decode("bind", _rec("bind", (4, 0, 110), family=1, path="/run/x.sock"))
    assert (ev["fd.name"], ev["fd.type"]) == ("/run/x.sock", "unix")


def test_path_calls_follow_links_only_as_the_call_does(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("")
    (tmp_path / "dir").symlink_to(real)
    (real / "lnk").symlink_to(real / "f")
    res = PathResolver()  # this process is alive, with the host's root
    pid = os.getpid()

    def chown(name: str, path: Path) -> str:
        rec = _rec(name, (0, 1, 2))
        rec.h.pid = pid
        rec.path = str(path)
        return str(_decode(name, rec, res)["fd.name"])

    assert chown("chown", tmp_path / "dir" / "lnk") == str(real / "f")  # chown follows all
    assert chown("lchown", tmp_path / "dir" / "lnk") == str(real / "lnk")  # not the last one
    rec = _rec("mkdir", (0, 0o755), path=str(tmp_path / "dir" / ".new"))
    rec.h.pid = pid
    assert _decode("mkdir", rec, res)["fd.name"] == str(real / ".new")


def test_proc_mem_from_the_resolved_path() -> None:
    for path, pid in (("/proc/123/mem", 123), ("/proc/123/task/124/mem", 123), ("/proc/123/maps", -1),
                      ("/tmp/proc/1/mem", -1)):
        ev = _decode("openat", _rec("openat", (0, 1, 0, 0), ret=3, flags=SC_F_RESOLVED, path="x",
                                    resolved=path))
        assert (ev["fd.is_proc_mem"], ev["fd.proc_mem_pid"]) == (pid > 0, pid), path


def test_proc_pid_and_proc_mem_together() -> None:
    """fd.proc_pid (whose /proc directory), fd.is_proc_mem and fd.proc_mem_pid from the one
    resolved path; None: fd.proc_pid is not set."""
    cases: list[tuple[str, int | None, int]] = [
        ("/proc/12/mem", 12, 12),
        ("/proc/12/task/13/mem", 12, 12),
        ("/proc/12/maps", 12, -1),
        ("/proc/12/task/13/maps", 12, -1),
        ("/proc/12/memx", 12, -1),
        ("/proc/12/mem/", 12, -1),
        ("/proc/12/task/mem", 12, -1),
        ("/proc/12/fd/3", 12, -1),
        ("/proc/12", 12, -1),
        ("/proc/12/", 12, -1),
        ("/proc/12mem", None, -1),
        ("/proc/12/mem\n", 12, -1),  # not the file /proc/12/mem
        ("/proc/\u0661\u0662/mem", None, -1),  # Arabic-Indic digits: no pid of the kernel's
        ("/proc/self/mem", None, -1),  # unresolved: the kernel names the pid
        ("/proc/thread-self/mem", None, -1),
        ("/proc/meminfo", None, -1),
        ("/proc/", None, -1),
        ("/tmp/proc/1/mem", None, -1),
        ("proc/1/mem", None, -1),
    ]
    for path, proc_pid, mem_pid in cases:
        ev = _decode("openat", _rec("openat", (0, 0, 0, 0), ret=3, flags=SC_F_RESOLVED, path="x",
                                    resolved=path))
        got = (ev.get("fd.proc_pid"), ev["fd.is_proc_mem"], ev["fd.proc_mem_pid"])
        assert got == (proc_pid, mem_pid != -1, mem_pid), path
