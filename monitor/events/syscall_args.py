"""Syscall records' arguments decoded into Falco-style fields, one decoder per family.

The kernel records raw argument registers plus the strings and addresses it had to read
from user memory; everything symbolic (flag names, request names, address text) is done
here. Which decoder serves which syscall is said once, in monitor.events.catalog.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import struct
from collections.abc import Callable
from typing import Any

from monitor.events.paths import AT_FDCWD, PathResolver
from monitor.kernel.records import SC_F_NSFS, SC_F_SOCKET, SC_F_TIMES, SyscallRecord
from monitor.netaddr import addr_hex

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


@functools.lru_cache(maxsize=256)
def open_flags(flags: int) -> str:
    # A pure function of a value programs repeat (O_RDONLY|O_CLOEXEC...): cached.
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
    # posixpath.dirname/basename, without their str/bytes dispatch (a tenth of an open's decode).
    i = name.rfind("/") + 1
    head = name[:i]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    ev["fd.directory"] = head
    ev["fd.filename"] = name[i:]


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
    pid = int(m["pid"]) if m else -1
    if m:
        ev["fd.proc_pid"] = pid
    mem = m is not None and m["mem"] is not None
    ev["fd.is_proc_mem"] = mem
    ev["fd.proc_mem_pid"] = pid if mem else -1


# /proc/<pid> or /proc/<pid>/... : whose process file an open names, and whether it is that
# process's memory (/proc/<pid>/mem, /proc/<pid>/task/<tid>/mem). Matched on the resolved
# path: /proc/self is a link. ASCII digits and \Z: the kernel's names, no trailing newline.
_PROC_PID = re.compile(r"/proc/(?P<pid>[0-9]+)(?:\Z|/(?P<mem>(?:task/[0-9]+/)?mem\Z)?)")


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
    if name == "fchmod":
        _fd_path(r, 0, ev, res)
        ev["evt.arg.mode"] = r.args[1] & 0o7777
        return
    at = name in ("fchmodat", "fchmodat2")
    if name == "fchmodat2":
        _file_path(r, 0, ev, res, follow=not r.args[3] & _AT_SYMLINK_NOFOLLOW)
        ev["evt.arg.flags"] = _at_flags(r.args[3])
    else:
        _at_path(0 if at else None, "path")(r, name, ev, res)
    ev["evt.arg.mode"] = (r.args[2] if at else r.args[1]) & 0o7777


def two_paths(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    """rename/link: oldpath -> newpath; fd.name is what the call creates (newpath).

    Relative paths are joined with the directories the kernel saw them relative to
    (both captured during the call); links in their directories are then followed, so
    /tmp/lnk/x with lnk -> /etc is judged as /etc/x. Neither call follows a last link.
    """
    at = name in ("renameat", "renameat2", "linkat")
    old_dirfd, new_dirfd = (_s32(r.args[0]), _s32(r.args[2])) if at else (AT_FDCWD, AT_FDCWD)
    old, _ = res.resolve(r.h.pid, old_dirfd, r.path, r.base2)
    new, rel = res.resolve(r.h.pid, new_dirfd, r.path2, r.base)
    old, new = res.real(r.h.pid, old, False), res.real(r.h.pid, new, False)
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


# IPPROTO_* -> Falco's fd.l4proto (libsinsp add_socket / filtercheck TYPE_L4PROTO).
_L4 = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}
_SOCK_RAW = 3


def l4proto(r: SyscallRecord) -> str | None:
    """The transport of the kernel's socket behind the fd (sk_type, sk_protocol), named as
    Falco names it: tcp, udp, icmp (ping sockets, IPv4 or IPv6) or raw (SOCK_RAW of any
    protocol); None for a socket that is not AF_INET/AF_INET6 or an unknown protocol
    (Falco's "<NA>"). Never taken from the syscall's arguments."""
    s = r.sock
    if s is None or s.family not in (2, 10):
        return None
    if s.type == _SOCK_RAW:
        return "raw"
    return _L4.get(s.protocol)


def _l4_field(r: SyscallRecord, ev: dict[str, Any]) -> None:
    proto = l4proto(r)
    if proto is not None:
        ev["fd.l4proto"] = proto


_EINPROGRESS = 115


def _kernel_ends(r: SyscallRecord, ev: dict[str, Any], remote: bool) -> None:
    """The socket's ends as the kernel holds them: the local one always (when bound), the
    remote one when `remote` (it replaces what the caller's sockaddr said)."""
    s = r.sock
    if s is None or s.family not in (2, 10):
        return
    if remote and any(s.raddr):
        ip = _addr_text(s.family, s.raddr)
        ev["fd.rip"], ev["fd.rport"] = ip, s.rport
        ev["fd.name"] = f"{ip}:{s.rport}" if s.family == 2 else f"[{ip}]:{s.rport}"
        ev["fd.type"] = "ipv4" if s.family == 2 else "ipv6"
        ev["fd.sockfamily"] = _FAMILIES[s.family]
    if any(s.laddr) or s.lport:
        ip = _addr_text(s.family, s.laddr)
        ev["fd.lip"] = ev["fd.cip"] = ip
        ev["fd.lport"] = ev["fd.cport"] = s.lport
        ev["fd.cip.hex"] = addr_hex(ip)


def connect(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.fd"] = _s32(r.args[0])
    _socket_fields(r, ev)
    _l4_field(r, ev)
    # Falco: connected once connect returned 0 or EINPROGRESS; that also names the fd
    # after the peer it now has. Then the peer is the kernel's, not the caller's memory
    # (which another thread may have rewritten before sys_exit read it).
    connected = r.ret >= 0 or r.ret == -_EINPROGRESS
    ev["fd.connected"] = connected
    ev["fd.name_changed"] = connected
    _kernel_ends(r, ev, remote=connected)
    if "fd.rip" in ev:
        # Outbound: the server is the remote end (Falco rules use either name).
        ev["fd.sip"], ev["fd.sport"] = ev["fd.rip"], ev["fd.rport"]
        ev["fd.sip.hex"] = addr_hex(ev["fd.sip"])


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
    _l4_field(r, ev)


def dup(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.oldfd"] = _s32(r.args[0])
    # dup and fcntl(F_DUPFD*) take the lowest free fd: the new one is the result.
    ev["evt.arg.newfd"] = _s32(r.args[1]) if name in ("dup2", "dup3") else r.ret
    if name == "fcntl":
        ev["evt.arg.cmd"] = _FCNTL.get(r.args[1], str(r.args[1]))
    if r.flags & SC_F_SOCKET:
        _socket_fields(r, ev)
        _l4_field(r, ev)


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


# --- Coverage: files changed in place, namespaces, sockets, signals ---------------------------

_FCNTL = {0: "F_DUPFD", 1030: "F_DUPFD_CLOEXEC"}
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_EMPTY_PATH = 0x1000
_AT_FLAGS = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x1000, "AT_EMPTY_PATH"), (0x800, "AT_NO_AUTOMOUNT")]
_XATTR_FLAGS = [(1, "XATTR_CREATE"), (2, "XATTR_REPLACE")]
_UFFD_FLAGS = [(0o2000000, "O_CLOEXEC"), (0o4000, "O_NONBLOCK"), (1, "UFFD_USER_MODE_ONLY")]
_CLONE_NS = [(0x00020000, "CLONE_NEWNS"), (0x02000000, "CLONE_NEWCGROUP"), (0x04000000, "CLONE_NEWUTS"),
             (0x08000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"),
             (0x40000000, "CLONE_NEWNET"), (0x00000080, "CLONE_NEWTIME")]
_UNSHARE_OTHER = [(0x00000200, "CLONE_FS"), (0x00000400, "CLONE_FILES"), (0x00000800, "CLONE_SIGHAND"),
                  (0x00040000, "CLONE_SYSVSEM"), (0x00000100, "CLONE_VM"), (0x00010000, "CLONE_THREAD")]
# nsfs operation names (the kernel's) -> the CLONE_NEW* flag setns takes for them.
_NS_FLAG = {"mnt": "CLONE_NEWNS", "cgroup": "CLONE_NEWCGROUP", "uts": "CLONE_NEWUTS", "ipc": "CLONE_NEWIPC",
            "user": "CLONE_NEWUSER", "pid": "CLONE_NEWPID", "pid_for_children": "CLONE_NEWPID",
            "net": "CLONE_NEWNET", "time": "CLONE_NEWTIME", "time_for_children": "CLONE_NEWTIME"}
_SIGNALS = {n: f"SIG{s}" for n, s in (
    (0, "0"), (1, "HUP"), (2, "INT"), (3, "QUIT"), (4, "ILL"), (5, "TRAP"), (6, "ABRT"), (7, "BUS"),
    (8, "FPE"), (9, "KILL"), (10, "USR1"), (11, "SEGV"), (12, "USR2"), (13, "PIPE"), (14, "ALRM"),
    (15, "TERM"), (16, "STKFLT"), (17, "CHLD"), (18, "CONT"), (19, "STOP"), (20, "TSTP"), (21, "TTIN"),
    (22, "TTOU"), (23, "URG"), (24, "XCPU"), (25, "XFSZ"), (26, "VTALRM"), (27, "PROF"), (28, "WINCH"),
    (29, "IO"), (30, "PWR"), (31, "SYS"))}
_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2


def _at_flags(v: int) -> str:
    return "|".join(_bits(v, _AT_FLAGS))


def _fd_path(r: SyscallRecord, fd_arg: int, ev: dict[str, Any], res: PathResolver) -> None:
    """A fd-based call: fd.name is the fd's file as the kernel walked it (else /proc's)."""
    fd = _s32(r.args[fd_arg])
    ev["evt.arg.fd"] = fd
    path = r.resolved if r.resolved is not None else res.base(r.h.pid, fd)
    if path:
        _path_fields(ev, path, path, False)
    ev["fd.is_resolved"] = r.resolved is not None


def _file_path(r: SyscallRecord, dirfd_arg: int | None, ev: dict[str, Any], res: PathResolver,
               follow: bool) -> None:
    """A path-based call on an existing file (fd.name: the path given, made absolute with
    the directory the kernel saw, links followed as the call follows them); an *at call
    given "" (AT_EMPTY_PATH) or utimensat(fd, NULL) is on the fd's file, which the kernel
    walked (fd.is_resolved)."""
    dirfd = AT_FDCWD if dirfd_arg is None else _s32(r.args[dirfd_arg])
    if dirfd_arg is not None:
        ev["evt.arg.dirfd"] = dirfd
    if r.resolved is not None:
        _path_fields(ev, r.resolved, r.path, False)
        ev["fd.is_resolved"] = True
        return
    given, rel = res.resolve(r.h.pid, dirfd, r.path, r.base)
    _path_fields(ev, res.real(r.h.pid, given, follow), r.path, rel)
    ev["fd.is_resolved"] = False


def truncate(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    if name == "ftruncate":
        _fd_path(r, 0, ev, res)
    else:
        _file_path(r, None, ev, res, follow=True)
    ev["evt.arg.length"] = r.args[1] if r.args[1] < 1 << 63 else r.args[1] - (1 << 64)


def chown(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    if name == "fchown":
        _fd_path(r, 0, ev, res)
        ids = r.args[1], r.args[2]
    elif name == "fchownat":
        _file_path(r, 0, ev, res, follow=not r.args[4] & _AT_SYMLINK_NOFOLLOW)
        ev["evt.arg.flags"] = _at_flags(r.args[4])
        ids = r.args[2], r.args[3]
    else:
        _file_path(r, None, ev, res, follow=name == "chown")
        ids = r.args[1], r.args[2]
    ev["evt.arg.uid"], ev["evt.arg.gid"] = _id(ids[0]), _id(ids[1])


def mkdir(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    at = name == "mkdirat"
    _file_path(r, 0 if at else None, ev, res, follow=False)
    ev["fd.type"] = "directory"
    ev["evt.arg.mode"] = (r.args[2] if at else r.args[1]) & 0o7777


def xattr(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    """set/removexattr: the attribute name (security.capability gives a file capabilities)."""
    if name.startswith("f"):
        _fd_path(r, 0, ev, res)
    elif name.endswith("at"):
        _file_path(r, 0, ev, res, follow=not r.args[2] & _AT_SYMLINK_NOFOLLOW)
        ev["evt.arg.flags"] = _at_flags(r.args[2])
    else:
        _file_path(r, None, ev, res, follow=not name.startswith("l"))
    ev["evt.arg.name"] = r.aux
    if name in ("setxattr", "lsetxattr", "fsetxattr"):
        ev["evt.arg.flags"] = "|".join(_bits(r.args[4], _XATTR_FLAGS))
        ev["evt.arg.size"] = r.args[3]


def _utime(sec: int, nsec: int) -> int:
    if nsec == _UTIME_NOW:
        return -1
    if nsec == _UTIME_OMIT:
        return -2
    return sec * 1_000_000_000 + nsec


def utimensat(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    """Timestamps set; times given (not "now") are what timestomping looks like."""
    _file_path(r, 0, ev, res, follow=not r.args[3] & _AT_SYMLINK_NOFOLLOW)
    ev["evt.arg.flags"] = _at_flags(r.args[3])
    if r.flags & SC_F_TIMES:
        a_sec, a_nsec, m_sec, m_nsec = struct.unpack("<qqqq", r.aux_raw[:32])
        ev["evt.arg.atime"], ev["evt.arg.mtime"] = _utime(a_sec, a_nsec), _utime(m_sec, m_nsec)
    else:
        ev["evt.arg.atime"] = ev["evt.arg.mtime"] = -1  # times NULL: both now


def namespace(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    if name == "unshare":
        ev["evt.arg.flags"] = "|".join(_bits(r.args[0], _CLONE_NS + _UNSHARE_OTHER))
        return
    ev["evt.arg.fd"] = _s32(r.args[0])
    ev["evt.arg.ns"] = r.aux if r.flags & SC_F_NSFS else ""
    # The kernel's type of the namespace the fd names wins over the argument (0 = any).
    ev["evt.arg.nstype"] = (_NS_FLAG.get(r.aux, r.aux) if r.flags & SC_F_NSFS
                            else "|".join(_bits(r.args[1], _CLONE_NS)))


def _ip(family: int, addr: bytes) -> str:
    return _addr_text(family, addr) if family in (2, 10) else ""


def _endpoint(family: int, ip: str, port: int) -> str:
    return f"{ip}:{port}" if family == 2 else f"[{ip}]:{port}"


def _local(r: SyscallRecord, ev: dict[str, Any]) -> None:
    if r.laddr and r.family in (2, 10):
        ev["fd.lip"] = _ip(r.family, r.laddr)
        ev["fd.lport"] = r.lport


def inbound(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    """bind/listen: the socket's local end (the kernel's, after the call); accept: the
    client (peer of the returned socket) and the local end it connected to."""
    ev["evt.arg.fd"] = _s32(r.args[0])
    fam = _FAMILIES.get(r.family, str(r.family))
    ev["fd.sockfamily"] = fam
    ev["fd.type"] = {2: "ipv4", 10: "ipv6", 1: "unix"}.get(r.family, fam.lower())
    if name == "listen":
        ev["evt.arg.backlog"] = _s32(r.args[1])
    if name in ("accept", "accept4"):
        ev["fd.num"] = r.ret if r.ret >= 0 else -1
        _socket_fields(r, ev)  # the peer: fd.rip/fd.rport
        _local(r, ev)
        if "fd.rip" in ev and "fd.lip" in ev:
            ev["fd.cip"], ev["fd.cport"] = ev["fd.rip"], ev["fd.rport"]
            ev["fd.sip"], ev["fd.sport"] = ev["fd.lip"], ev["fd.lport"]
            ev["fd.name"] = (f"{_endpoint(r.family, ev['fd.cip'], ev['fd.cport'])}->"
                             f"{_endpoint(r.family, ev['fd.sip'], ev['fd.sport'])}")
        return
    if r.family == 1 and name == "bind":
        ev["fd.name"] = r.path
        return
    if r.laddr:
        _local(r, ev)
    elif r.family in (2, 10) and name == "bind":  # failed bind: the address asked for
        ev["fd.lip"], ev["fd.lport"] = _ip(r.family, r.addr), r.port
    if "fd.lip" in ev:
        ev["fd.sip"], ev["fd.sport"] = ev["fd.lip"], ev["fd.lport"]
        ev["fd.name"] = _endpoint(r.family, ev["fd.lip"], ev["fd.lport"])


def udp_send(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    """sendto/sendmsg on a UDP socket: the destination (given, else the connected peer)."""
    ev["evt.arg.fd"] = _s32(r.args[0])
    _socket_fields(r, ev)
    _local(r, ev)
    if "fd.rip" in ev:
        ev["fd.sip"], ev["fd.sport"] = ev["fd.rip"], ev["fd.rport"]
    if name == "sendto":
        ev["evt.arg.size"] = r.args[2]


def userfaultfd(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.flags"] = "|".join(_bits(r.args[0], _UFFD_FLAGS))
    ev["fd.num"] = r.ret if r.ret >= 0 else -1


def process_vm(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.pid"] = _s32(r.args[0])


def _proc_uid(proc_root: str, pid: int) -> int:
    try:
        with open(f"{proc_root}/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def kill(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    """kill/tkill/tgkill that crossed users (the kernel records no others): the target as
    the kernel signalled it; for a refused one (EPERM: nothing was signalled) its real uid
    is read from /proc now (-1 if it is gone)."""
    pid = _s32(r.args[0])
    sig = r.args[2] if name == "tgkill" else r.args[1]
    ev["evt.arg.sig"] = _SIGNALS.get(sig & 0xFFFFFFFF, str(sig))
    if name == "kill":
        ev["evt.arg.pid"] = pid
    elif name == "tkill":
        ev["evt.arg.tid"] = pid
    else:
        ev["evt.arg.pid"], ev["evt.arg.tid"] = pid, _s32(r.args[1])
    if r.target is not None:
        ev["evt.target.pid"], _tid, ev["evt.target.uid"] = r.target
        ev["evt.target.uid_source"] = "kernel"
        return
    target = _s32(r.args[1]) if name == "tgkill" else pid
    ev["evt.target.pid"] = target
    uid = _proc_uid(res.proc_root, target) if target > 0 else -1
    ev["evt.target.uid"] = uid
    ev["evt.target.uid_source"] = "procfs" if uid >= 0 else ""
