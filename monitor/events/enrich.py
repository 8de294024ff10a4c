"""Turns decoded kernel records into events: flat mappings of Falco-style fields.

A flat dict is what rule evaluation is cheapest on, and it is also the JSON-lines
format that `--record` writes and `ringwatch replay` reads.
"""

from __future__ import annotations

import errno
import posixpath
import pwd
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from monitor.enforce.event import EVENT_TYPE as DENY_EVENT_TYPE
from monitor.enforce.event import deny_fields
from monitor.events.decode import PathResolver, decode_fields
from monitor.kernel.records import (
    DenyRecord,
    ExecRecord,
    ExitRecord,
    ForkRecord,
    Header,
    Record,
    SyscallRecord,
)
from monitor.lineage.cache import Lineage
from monitor.lineage.process import ProcInfo

Event = dict[str, Any]


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        return "noboot"


def rfc3339_ns(ts_ns: int) -> str:
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns:09d}Z"


def _result(ret: int) -> Event:
    return {
        "evt.res": ret,
        "evt.failed": ret < 0,
        "evt.errno": errno.errorcode.get(-ret, str(-ret)) if ret < 0 else "",
    }


def exe_fields(rec: ExecRecord) -> Event:
    """What the kernel executed (proc.exe is only the string that was passed)."""
    exe = rec.exe
    if exe is None:
        return {}
    ev: Event = {
        "proc.exe_ino": exe.ino,
        "proc.exe_ino_ctime": exe.ctime_ns,
        "proc.exe_ino_mtime": exe.mtime_ns,
        "proc.is_exe_writable": exe.writable_by(rec.h.uid, rec.h.gid),
        "proc.exe_deleted": exe.deleted,
    }
    if exe.path is not None:
        ev["proc.exepath"] = exe.path
        ev["proc.is_name_exe"] = name_is_exe(rec.h.comm, exe.path)
    task = rec.task
    if task is not None:
        ev["proc.tty"] = task.tty
        ev["proc.sid"] = task.sid
        ev["proc.vpgid"] = task.vpgid
        ev["user.loginuid"] = -1 if task.loginuid == 0xFFFFFFFF else task.loginuid
        if task.cwd is not None:
            ev["proc.cwd"] = task.cwd
    return ev


def name_is_exe(comm: str, exepath: str) -> bool:
    """Whether the process name (comm, which prctl(PR_SET_NAME), /proc/self/comm or the
    name of a symlink executed can set to anything) is the executed file's own name, cut
    to comm's 15 characters. False for scripts: the executed file is the interpreter."""
    return bool(exepath) and comm == posixpath.basename(exepath)[:15]


class Enricher:
    """Adds wall time and, with a Lineage, the process's image and ancestry."""

    def __init__(self, lineage: Lineage | None = None) -> None:
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; the offset turns it into wall time.
        self.mono_to_wall_ns = time.time_ns() - time.monotonic_ns()
        self.lineage = lineage
        self.paths = PathResolver()
        self.boot_id = boot_id()

    def _add_lineage(self, ev: Event, info: ProcInfo | None, is_exec: bool) -> None:
        lin = self.lineage
        if lin is None or info is None:
            return
        ev["proc.exec_id"] = lin.exec_id(info)
        if not is_exec:
            # The record itself carries no image: the lineage entry has the last exec's.
            args = info.argv[1:]
            # The lineage keeps only the kernel-resolved path of what the process runs.
            ev.setdefault("proc.exe", info.exe)
            ev.setdefault("proc.exepath", info.exe)
            ev.setdefault("proc.is_name_exe", name_is_exe(ev["proc.name"], info.exe))
            ev.setdefault("proc.argv", info.argv)
            ev.setdefault("proc.args", " ".join(args))
            ev.setdefault("proc.cmdline", " ".join([info.comm, *args]))
        ancestors = lin.ancestors(info)
        if ancestors:
            parent = ancestors[0]
            ev["proc.pname"] = parent.comm
            ev["proc.pexe"] = parent.exe
            ev["proc.pexepath"] = parent.exe
            ev["proc.pcmdline"] = parent.cmdline()
            ev["proc.pexec_id"] = lin.exec_id(parent)
        ev["proc.aname"] = [a.comm for a in ancestors]
        ev["proc.apid"] = [a.tgid for a in ancestors]
        ev["proc.aexe"] = [a.exe for a in ancestors]
        ev["proc.aexepath"] = ev["proc.aexe"]

    def _common(self, h: Header, evt_type: str) -> Event:
        wall = h.ktime_ns + self.mono_to_wall_ns
        return {
            # Unique on the host and the same in every sink: one CPU cannot record two
            # events in the same nanosecond; the boot id separates boots.
            "evt.id": f"{self.boot_id}-{h.cpu}-{h.ktime_ns}",
            "evt.type": evt_type,
            "evt.time": rfc3339_ns(wall),
            "evt.ts": wall,
            "evt.mono_ns": h.ktime_ns,
            "evt.cpu": h.cpu,
            "proc.pid": h.tgid,
            "proc.tid": h.pid,
            "proc.ppid": h.ppid,
            "proc.name": h.comm,
            "proc.start_ns": h.start_ns,
            "user.uid": h.uid,
            "user.name": user_name(h.uid),
            "group.gid": h.gid,
            "cgroup.id": h.cgroup_id,
        }

    def event(self, rec: Record) -> Event:
        info = self.lineage.observe(rec) if self.lineage is not None else None
        ev = self._event(rec)
        self._add_lineage(ev, info, isinstance(rec, ExecRecord))
        return ev

    def _event(self, rec: Record) -> Event:
        if isinstance(rec, SyscallRecord):
            name, fields = decode_fields(rec, self.paths)
            ev = self._common(rec.h, name)
            ev.update(_result(rec.ret))
            ev.update(fields)
            return ev
        if isinstance(rec, ExecRecord):
            ev = self._common(rec.h, rec.syscall)
            args = rec.argv[1:]
            ev.update(_result(rec.ret))
            ev.update({
                "proc.exe": rec.filename,
                "proc.argv": rec.argv,
                "proc.args": " ".join(args),
                "proc.cmdline": " ".join([rec.h.comm, *args]),
                "proc.argv_truncated": rec.argv_truncated,
                "proc.is_exe_from_memfd": rec.exe_from_memfd,
                "evt.arg.dirfd": rec.dirfd,
            })
            ev.update(exe_fields(rec))
            return ev
        if isinstance(rec, ForkRecord):
            ev = self._common(rec.h, "fork")
            ev["proc.child_pid"] = rec.h.tgid
            return ev
        if isinstance(rec, DenyRecord):
            ev = self._common(rec.h, DENY_EVENT_TYPE)
            ev.update(deny_fields(rec))
            return ev
        assert isinstance(rec, ExitRecord)
        ev = self._common(rec.h, "exit")
        ev["proc.exit_code"] = rec.exit_code
        ev["proc.exit_signal"] = rec.signal
        return ev
