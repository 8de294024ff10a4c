"""Syscall records' arguments decoded into Falco-style fields, one decoder per family.

The kernel records raw argument registers plus the strings and addresses it had to read
from user memory; everything symbolic (flag names, request names, address text) is done
here. Which decoder serves which syscall is said once, in monitor.events.catalog.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable
from typing import Any

from monitor.events.paths import AT_FDCWD, PathResolver
from monitor.kernel.records import SC_F_SOCKET, SyscallRecord

_OPEN_FLAGS = [
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"), (0o40000, "O_DIRECT"),
    (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"), (0o20000000, "O_TMPFILE"),
]
_ACCMODE = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
_FAMILIES = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
_SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
               10: "SOCK_PACKET"}
_PTRACE = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR",
    4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT",
    8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
    16: "PTRACE_ATTACH", 17: "PTRACE_DETACH", 24: "PTRACE_SYSCALL", 0x4200: "PTRACE_SETOPTIONS",
    0x4201: "PTRACE_GETEVENTMSG", 0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT",
    0x4208: "PTRACE_LISTEN",
}
BPF_CMDS = [
    "BPF_MAP_CREATE", "BPF_MAP_LOOKUP_ELEM", "BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM",
    "BPF_MAP_GET_NEXT_KEY", "BPF_PROG_LOAD", "BPF_OBJ_PIN", "BPF_OBJ_GET", "BPF_PROG_ATTACH",
    "BPF_PROG_DETACH", "BPF_PROG_TEST_RUN", "BPF_PROG_GET_NEXT_ID", "BPF_MAP_GET_NEXT_ID",
    "BPF_PROG_GET_FD_BY_ID", "BPF_MAP_GET_FD_BY_ID", "BPF_OBJ_GET_INFO_BY_FD", "BPF_PROG_QUERY",
    "BPF_RAW_TRACEPOINT_OPEN", "BPF_BTF_LOAD", "BPF_BTF_GET_FD_BY_ID", "BPF_TASK_FD_QUERY",
    "BPF_MAP_LOOKUP_AND_DELETE_ELEM", "BPF_MAP_FREEZE", "BPF_BTF_GET_NEXT_ID",
    "BPF_MAP_LOOKUP_BATCH", "BPF_MAP_LOOKUP_AND_DELETE_BATCH", "BPF_MAP_UPDATE_BATCH",
    "BPF_MAP_DELETE_BATCH", "BPF_LINK_CREATE", "BPF_LINK_UPDATE", "BPF_LINK_GET_FD_BY_ID",
    "BPF_LINK_GET_NEXT_ID", "BPF_ENABLE_STATS", "BPF_ITER_CREATE", "BPF_LINK_DETACH",
    "BPF_PROG_BIND_MAP", "BPF_TOKEN_CREATE",
]
_MFD_FLAGS = [(1, "MFD_CLOEXEC"), (2, "MFD_ALLOW_SEALING"), (4, "MFD_HUGETLB"), (8, "MFD_NOEXEC_SEAL"),
              (16, "MFD_EXEC")]


def _bits(value: int, names: list[tuple[int, str]]) -> list[str]:
    return [name for bit, name in names if value & bit == bit]


def open_flags(flags: int) -> str:
    return "|".join([_ACCMODE.get(flags & 3, "O_ACCMODE"), *_bits(flags & ~3, _OPEN_FLAGS)])


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _id(v: int) -> int:
    """A uid/gid argument: -1 means 'unchanged'."""
    return _s32(v)


def _addr_text(family: int, addr: bytes) -> str:
    if family == 2:
        return str(ipaddress.IPv4Address(addr[:4]))
    if family == 10:
        return str(ipaddress.IPv6Address(addr[:16]))
    return ""


def _path_fields(ev: dict[str, Any], name: str, raw: str, relative: bool, kind: str = "file") -> None:
    ev["fd.name"] = name
    ev["fd.nameraw"] = raw
    ev["fd.relative"] = relative
    ev["fd.type"] = kind
    ev["fd.directory"] = posixpath.dirname(name)
    ev["fd.filename"] = posixpath.basename(name)


# (record, its evt.type, the fields to fill, path resolution)
Decoder = Callable[[SyscallRecord, str, dict[str, Any], PathResolver], None]


def open_(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    dirfd = AT_FDCWD if name == "open" else _s32(r.args[0])
    flags, mode = (r.args[1], r.args[2]) if name == "open" else (r.args[2], r.args[3])
    name, rel = res.resolve(r.h.pid, dirfd, r.path, r.base)
    if r.resolved is not None:
        # What was opened, not what was typed: a symlink or ".." cannot disguise it.
        name = r.resolved
    _path_fields(ev, name, r.path, rel)
    ev["fd.is_resolved"] = r.resolved is not None
    acc = flags & 3
    ev["evt.arg.flags"] = open_flags(flags)
    ev["evt.arg.mode"] = mode & 0o7777
    ev["evt.arg.dirfd"] = dirfd
    ev["evt.is_open_read"] = acc in (0, 2)
    ev["evt.is_open_write"] = acc in (1, 2) or bool(flags & 0o1000)
    ev["fd.num"] = r.ret if r.ret >= 0 else -1
    m = _PROC_PID.match(name)
    if m:
        ev["fd.proc_pid"] = int(m.group(1))


# /proc/<pid>/... : whose process file an open names (the resolved path: /proc/self is a link).
_PROC_PID = re.compile(r"/proc/([0-9]+)(/|$)")


def _at_path(dirfd_arg: int | None, path_attr: str) -> Decoder:
    def decode(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
        dirfd = AT_FDCWD if dirfd_arg is None else _s32(r.args[dirfd_arg])
        raw = getattr(r, path_attr)
        name, rel = res.resolve(r.h.pid, dirfd, raw, r.base)
        _path_fields(ev, name, raw, rel)
    return decode


def unlink(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    _at_path(0 if name == "unlinkat" else None, "path")(r, name, ev, res)
    if name == "unlinkat":
        ev["evt.arg.flags"] = "AT_REMOVEDIR" if r.args[2] & 0x200 else ""


def chmod(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    at = name == "fchmodat"
    _at_path(0 if at else None, "path")(r, name, ev, res)
    ev["evt.arg.mode"] = (r.args[2] if at else r.args[1]) & 0o7777


def two_paths(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    """rename/link: oldpath -> newpath; fd.name is what the call creates (newpath)."""
    at = name in ("renameat", "renameat2", "linkat")
    old_dirfd, new_dirfd = (_s32(r.args[0]), _s32(r.args[2])) if at else (AT_FDCWD, AT_FDCWD)
    old, _ = res.resolve(r.h.pid, old_dirfd, r.path)
    new, rel = res.resolve(r.h.pid, new_dirfd, r.path2, r.base)
    _path_fields(ev, new, r.path2, rel)
    ev["evt.arg.oldpath"] = old
    ev["evt.arg.newpath"] = new


def symlink(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    """symlink(target, linkpath): the target is stored as given, never resolved."""
    dirfd = _s32(r.args[1]) if name == "symlinkat" else AT_FDCWD
    link, rel = res.resolve(r.h.pid, dirfd, r.path2, r.base)
    _path_fields(ev, link, r.path2, rel)
    ev["evt.arg.target"] = r.path
    ev["evt.arg.linkpath"] = link


def connect(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.fd"] = _s32(r.args[0])
    _socket_fields(r, ev)
    if "fd.rip" in ev:
        # Outbound: the server is the remote end (Falco rules use either name).
        ev["fd.sip"], ev["fd.sport"] = ev["fd.rip"], ev["fd.rport"]


def _socket_fields(r: SyscallRecord, ev: dict[str, Any]) -> None:
    fam = _FAMILIES.get(r.family, str(r.family))
    ev["fd.sockfamily"] = fam
    if r.family in (2, 10):
        ip = _addr_text(r.family, r.addr)
        ev["fd.type"] = "ipv4" if r.family == 2 else "ipv6"
        ev["fd.rip"] = ip
        ev["fd.rport"] = r.port
        ev["fd.name"] = f"{ip}:{r.port}" if r.family == 2 else f"[{ip}]:{r.port}"
    elif r.family == 1:
        ev["fd.type"] = "unix"
        ev["fd.name"] = r.path
    else:
        ev["fd.type"] = fam.lower()


def socket(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.domain"] = _FAMILIES.get(r.args[0] & 0xFFFF, str(r.args[0]))
    ev["evt.arg.sotype"] = _SOCK_TYPES.get(r.args[1] & 0xF, str(r.args[1] & 0xF))
    ev["evt.arg.proto"] = _s32(r.args[2])
    ev["fd.num"] = r.ret if r.ret >= 0 else -1


def dup(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.oldfd"] = _s32(r.args[0])
    ev["evt.arg.newfd"] = _s32(r.args[1])
    if r.flags & SC_F_SOCKET:
        _socket_fields(r, ev)


def ptrace(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.request"] = _PTRACE.get(r.args[0], str(r.args[0]))
    ev["evt.arg.pid"] = _s32(r.args[1])


def setid(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    # The id that decides privilege: the effective one where the call sets several.
    idx = {"setreuid": 1, "setregid": 1, "setresuid": 1, "setresgid": 1}.get(name, 0)
    key = "evt.arg.gid" if "gid" in name else "evt.arg.uid"
    ev[key] = _id(r.args[idx])


def mount(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    target, rel = res.resolve(r.h.pid, AT_FDCWD, r.path2, r.base)
    _path_fields(ev, target, r.path2, rel)
    ev["evt.arg.source"] = r.path
    ev["evt.arg.fstype"] = r.aux
    ev["evt.arg.flags"] = r.args[3]


def module(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    if name == "finit_module":
        fd = _s32(r.args[0])
        ev["evt.arg.fd"] = fd
        base = res.base(r.h.pid, fd)
        if base:
            _path_fields(ev, base, base, False)


def bpf(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    cmd = r.args[0]
    ev["evt.arg.cmd"] = BPF_CMDS[cmd] if cmd < len(BPF_CMDS) else str(cmd)


def memfd(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.name"] = r.path
    ev["evt.arg.flags"] = "|".join(_bits(r.args[1], _MFD_FLAGS))
    ev["fd.type"] = "memfd"
    ev["fd.name"] = f"memfd:{r.path}"
    ev["fd.num"] = r.ret if r.ret >= 0 else -1
