"""The event catalogue: every event type ringwatch knows, declared once.

An entry says which record carries the family, its x86_64 syscall numbers (the kernel
programs get them from here, as -DRW_NR_<name>=<nr>), its decoder, the fields it sets
(what `ringwatch rules fields` prints and rules may name) and its role in the kernel
filters. Adding a syscall is one entry here plus its capture code in bpf/sensor.bpf.c.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from monitor.enforce.event import EVENT_TYPE as DENY_EVENT_TYPE
from monitor.enforce.event import deny_fields
from monitor.events import creds, environ, exe, uring, writers
from monitor.events import syscall_args as sa
from monitor.events.fields import (
    ARG_DIRFD,
    ARG_FD,
    ARG_FLAGS,
    ARG_MODE,
    COALESCE,
    COMMON,
    CONTAINER,
    FD_L4PROTO,
    FD_NAME,
    FD_NUM,
    FD_RIP,
    FD_RPORT,
    FD_SIP,
    FD_SIP_NAME,
    FD_SPORT,
    FD_TYPE,
    LINEAGE,
    PATH,
    RESULT,
    SOCKET,
    Field,
)
from monitor.events.paths import PathResolver
from monitor.kernel.records import DenyRecord, ExecRecord, ExitRecord, ForkRecord, RecordType, ThrottleRecord

Event = dict[str, Any]
# (record, its evt.type, the event to fill, path resolution)
Decoder = Callable[[Any, str, Event, PathResolver], None]


class FilterRole(enum.Enum):
    """How the kernel decides whether a family's records reach userspace."""

    # Always recorded: lineage is built from them whatever the rules say.
    PROCESS = "process"
    # Recorded only when a loaded rule (or sensor.extra_event_types) names the type.
    SYSCALL = "syscall"
    # As SYSCALL, and also dropped by path prefix when every rule bounds fd.name.
    OPEN_PATH = "open_path"
    # As SYSCALL, and also dropped by bpf() command when rules name the commands.
    BPF_COMMAND = "bpf_command"
    # Produced by the LSM programs when a deny/audit rule decides.
    ENFORCE = "enforce"


@dataclass(frozen=True, slots=True)
class EventType:
    family: str
    record: RecordType
    decode: Decoder
    fields: tuple[Field, ...]
    role: FilterRole = FilterRole.SYSCALL
    # evt.type -> x86_64 syscall number; an event type without a syscall maps to None.
    types: Mapping[str, int | None] = field(default_factory=dict)


def _exec(rec: ExecRecord, name: str, ev: Event, res: PathResolver) -> None:
    args = rec.argv[1:]
    # Falco's proc.exe is argv[0]; the path the caller passed is evt.arg.filename; the
    # file the kernel ran is proc.exepath (exe.exe_fields). Only the last is the truth.
    ev["proc.exe"] = rec.argv[0] if rec.argv else ""
    ev["evt.arg.filename"] = rec.filename
    ev["proc.argv"] = rec.argv
    ev["proc.args"] = " ".join(args)
    ev["proc.cmdline"] = " ".join([rec.h.comm, *args])
    ev["proc.argv_truncated"] = rec.argv_truncated
    ev["proc.is_exe_from_memfd"] = rec.exe_from_memfd
    ev["evt.arg.dirfd"] = rec.dirfd
    ev.update(exe.exe_fields(rec))
    ev.update(environ.env_fields(rec))
    ev.update(exe.age_fields(ev))


def _fork(rec: ForkRecord, name: str, ev: Event, res: PathResolver) -> None:
    ev["proc.child_pid"] = rec.h.tgid
    ev["cgroup.v1_id"] = rec.cgroup1_id


def _exit(rec: ExitRecord, name: str, ev: Event, res: PathResolver) -> None:
    ev["proc.exit_code"] = rec.exit_code
    ev["proc.exit_signal"] = rec.signal


def _deny(rec: DenyRecord, name: str, ev: Event, res: PathResolver) -> None:
    ev.update(deny_fields(rec))


def _throttle(rec: ThrottleRecord, name: str, ev: Event, res: PathResolver) -> None:
    ev["throttle.scope"] = rec.scope.name.lower()
    ev["throttle.count"] = rec.throttled
    ev["throttle.rate"] = rec.rate
    ev["throttle.burst"] = rec.burst


_PATH_OUT = Field("evt.arg.newpath", str, "rename/link destination")
_ARG_CMD = Field("evt.arg.cmd", str, "bpf command (BPF_PROG_LOAD, ...); fcntl command (F_DUPFD, ...)")
_RESOLVED = Field("fd.is_resolved", bool, "fd.name is the kernel's path of the file (fd-based calls, "
                  "AT_EMPTY_PATH); else the path given, made absolute from the directory the kernel "
                  "saw, with links in it followed at decode time")
_PROC_MEM = Field("fd.is_proc_mem", bool, "open: the file opened is a process's memory, /proc/PID/mem "
                  "(resolved: /proc/self/mem and links count)")
_PROC_MEM_PID = Field("fd.proc_mem_pid", int, "open: the PID of /proc/PID/mem opened; -1 otherwise")
_ARG_UID = Field("evt.arg.uid", int, "uid requested by set*uid (the effective one) or chown; -1 = unchanged")
_ARG_GID = Field("evt.arg.gid", int, "gid requested by set*gid (the effective one) or chown; -1 = unchanged")
_ARG_NAME = Field("evt.arg.name", str, "memfd_create name; xattr name (security.capability, ...)")
_ARG_SIZE = Field("evt.arg.size", int, "setxattr value size; sendto length")
_ARG_PID = Field("evt.arg.pid", int, "target pid: ptrace, process_vm_writev, kill")
_FD_LIP = Field("fd.lip", str, "local IP of the socket, from its kernel sock (bind, listen, accept, "
                "UDP sends)")
_FD_LPORT = Field("fd.lport", int, "local port of the socket, from its kernel sock")

CATALOG: tuple[EventType, ...] = (
    EventType("exec", RecordType.EXEC, _exec, (
        Field("proc.argv_truncated", bool, "argv was cut at the kernel's bound"),
        Field("proc.is_exe_from_memfd", bool, "the executed file is a memfd (fileless execution)"),
        Field("evt.arg.filename", str, "exec events: the path the caller passed to execve/execveat, "
              "as given (relative, a symlink, empty with AT_EMPTY_PATH); if the caller's memory was "
              "unreadable, the kernel's copy (bprm->filename: /dev/fd/N for an fd)"),
        ARG_DIRFD, *exe.FIELDS, *environ.FIELDS, *writers.FIELDS,
    ), FilterRole.PROCESS, {"execve": 59, "execveat": 322}),
    EventType("fork", RecordType.FORK, _fork, (
        Field("proc.child_pid", int, "the new process (fork events)"), exe.CGROUP1,
    ), FilterRole.PROCESS, {"fork": None}),
    EventType("exit", RecordType.EXIT, _exit, (
        Field("proc.exit_code", int, "exit code (exit events)"),
        Field("proc.exit_signal", int, "terminating signal, 0 if none (exit events)"),
    ), FilterRole.PROCESS, {"exit": None}),
    EventType("open", RecordType.SYSCALL, sa.open_, (
        *PATH, ARG_FLAGS, ARG_MODE, ARG_DIRFD, FD_NUM,
        Field("evt.is_open_read", bool, "opened for reading"),
        Field("evt.is_open_write", bool, "opened for writing (or truncation)"),
        Field("fd.is_resolved", bool, "fd.name is the kernel's path of the file actually opened"),
        _PROC_MEM, _PROC_MEM_PID,
        *uring.OP_FIELDS,
        Field("fd.proc_pid", int, "opens of /proc/<pid>/...: that pid (from fd.name, resolved, so "
              "/proc/self/mem names the opener)"),
    ), FilterRole.OPEN_PATH, {"open": 2, "openat": 257, "openat2": 437}),
    EventType("unlink", RecordType.SYSCALL, sa.unlink, (*PATH, ARG_FLAGS),
              types={"unlink": 87, "unlinkat": 263, "rmdir": 84}),
    EventType("chmod", RecordType.SYSCALL, sa.chmod, (
        *PATH, ARG_MODE, ARG_FD, ARG_DIRFD, ARG_FLAGS, _RESOLVED),
              types={"chmod": 90, "fchmodat": 268, "fchmod": 91, "fchmodat2": 452}),
    EventType("rename_link", RecordType.SYSCALL, sa.two_paths, (
        *PATH,
        Field("evt.arg.oldpath", str, "rename/link source"),
        _PATH_OUT,
    ), types={"rename": 82, "renameat": 264, "renameat2": 316, "link": 86, "linkat": 265}),
    EventType("symlink", RecordType.SYSCALL, sa.symlink, (
        *PATH,
        Field("evt.arg.target", str, "symlink target, as given"),
        Field("evt.arg.linkpath", str, "symlink path created"),
    ), types={"symlink": 88, "symlinkat": 266}),
    EventType("connect", RecordType.SYSCALL, sa.connect, (
        *SOCKET, ARG_FD, FD_SIP, FD_SPORT, FD_L4PROTO, FD_SIP_NAME, *uring.OP_FIELDS,
        Field("fd.connected", bool, "connect returned 0 or EINPROGRESS (Falco's fd.connected after a "
              "connect); then fd.rip/fd.sip and the port are the peer the kernel's socket holds, not "
              "the caller's sockaddr"),
        Field("fd.name_changed", bool, "the connect gave the fd a peer (as fd.connected; Falco also says "
              "false for a reconnect to the same peer)"),
        Field("fd.cip", str, "client (local) IP of the connecting socket, from the kernel"),
        Field("fd.cport", int, "client (local) port of the connecting socket, from the kernel"),
        Field("fd.lip", str, "local IP (as fd.cip on connect)"),
        Field("fd.lport", int, "local port (as fd.cport on connect)"),
        Field("fd.sip.hex", str, "fd.sip as 32 hex digits (IPv4 as ::ffff:a.b.c.d): Falco's fd.ip, "
              "fd.net, fd.snet checks compare ranges of it"),
        Field("fd.cip.hex", str, "fd.cip as 32 hex digits, as fd.sip.hex"),
    ), types={"connect": 42}),
    EventType("socket", RecordType.SYSCALL, sa.socket, (
        Field("evt.arg.domain", str, "socket domain: AF_INET, AF_PACKET, ..."),
        Field("evt.arg.sotype", str, "socket type: SOCK_STREAM, SOCK_RAW, ..."),
        Field("evt.arg.proto", int, "socket protocol"),
        FD_NUM, FD_L4PROTO,
    ), types={"socket": 41}),
    EventType("dup", RecordType.SYSCALL, sa.dup, (
        *SOCKET,
        Field("evt.arg.oldfd", int, "dup2/dup3/dup/fcntl source fd (a socket: recorded only then)"),
        Field("evt.arg.newfd", int, "dup2/dup3 target fd, dup/fcntl result (0, 1 or 2: recorded only then)"),
        _ARG_CMD, FD_L4PROTO,
    ), types={"dup2": 33, "dup3": 292, "dup": 32, "fcntl": 72}),
    EventType("ptrace", RecordType.SYSCALL, sa.ptrace, (
        Field("evt.arg.request", str, "ptrace request: PTRACE_ATTACH, PTRACE_TRACEME, ..."),
        _ARG_PID,
    ), types={"ptrace": 101}),
    EventType("setid", RecordType.SYSCALL, sa.setid, (
        _ARG_UID, _ARG_GID,
    ), types={"setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117,
              "setresgid": 119, "setfsuid": 122, "setfsgid": 123}),
    EventType("mount", RecordType.SYSCALL, sa.mount, (
        *PATH, ARG_FLAGS,
        Field("evt.arg.source", str, "mount source"),
        Field("evt.arg.fstype", str, "mount filesystem type"),
    ), types={"mount": 165}),
    EventType("module", RecordType.SYSCALL, sa.module, (*PATH, ARG_FD),
              types={"init_module": 175, "finit_module": 313}),
    EventType("bpf", RecordType.SYSCALL, sa.bpf, (_ARG_CMD,), FilterRole.BPF_COMMAND, {"bpf": 321}),
    EventType("memfd", RecordType.SYSCALL, sa.memfd, (
        FD_NAME, FD_TYPE, FD_NUM, ARG_FLAGS,
        _ARG_NAME,
    ), types={"memfd_create": 319}),
    # Coverage: files changed in place, namespaces, inbound and UDP sockets, memory
    # writes into other processes, signals across users.
    EventType("truncate", RecordType.SYSCALL, sa.truncate, (
        *PATH, ARG_FD, _RESOLVED,
        Field("evt.arg.length", int, "truncate/ftruncate: the new length"),
    ), types={"truncate": 76, "ftruncate": 77}),
    EventType("chown", RecordType.SYSCALL, sa.chown, (
        *PATH, ARG_FD, ARG_DIRFD, ARG_FLAGS, _RESOLVED, _ARG_UID, _ARG_GID),
              types={"chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260}),
    EventType("mkdir", RecordType.SYSCALL, sa.mkdir, (*PATH, ARG_MODE, ARG_DIRFD, _RESOLVED),
              types={"mkdir": 83, "mkdirat": 258}),
    EventType("xattr", RecordType.SYSCALL, sa.xattr, (
        *PATH, ARG_FD, ARG_DIRFD, ARG_FLAGS, _RESOLVED, _ARG_NAME, _ARG_SIZE,
    ), types={"setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
              "lremovexattr": 198, "fremovexattr": 199, "setxattrat": 463, "removexattrat": 466}),
    EventType("utimensat", RecordType.SYSCALL, sa.utimensat, (
        *PATH, ARG_DIRFD, ARG_FLAGS, _RESOLVED,
        Field("evt.arg.atime", int, "utimensat: access time set, ns since the epoch; -1 now, -2 unchanged"),
        Field("evt.arg.mtime", int, "utimensat: modification time set, ns since the epoch; -1 now "
              "(also when no times are given), -2 unchanged; >= 0 is a chosen time (timestomping)"),
    ), types={"utimensat": 280}),
    EventType("namespace", RecordType.SYSCALL, sa.namespace, (
        ARG_FD, ARG_FLAGS,
        Field("evt.arg.nstype", str, "setns: namespace type as CLONE_NEW*, from the fd's nsfs inode "
              "when it is one (else the argument)"),
        Field("evt.arg.ns", str, "setns: the kernel's name of the namespace the fd names (net, mnt, "
              "pid_for_children, ...); empty for a pidfd"),
    ), types={"setns": 308, "unshare": 272}),
    EventType("inbound", RecordType.SYSCALL, sa.inbound, (
        *SOCKET, ARG_FD, FD_NUM, FD_SIP, FD_SIP_NAME, FD_SPORT, _FD_LIP, _FD_LPORT,
        Field("fd.cip", str, "accept: client IP (the peer of the accepted socket)"),
        Field("fd.cport", int, "accept: client port"),
        Field("evt.arg.backlog", int, "listen: backlog"),
    ), types={"bind": 49, "listen": 50, "accept": 43, "accept4": 288}),
    EventType("udp_send", RecordType.SYSCALL, sa.udp_send, (
        *SOCKET, ARG_FD, FD_SIP, FD_SIP_NAME, FD_SPORT, _FD_LIP, _FD_LPORT, _ARG_SIZE),
              types={"sendto": 44, "sendmsg": 46}),
    EventType("userfaultfd", RecordType.SYSCALL, sa.userfaultfd, (ARG_FLAGS, FD_NUM),
              types={"userfaultfd": 323}),
    EventType("process_vm", RecordType.SYSCALL, sa.process_vm, (_ARG_PID,),
              types={"process_vm_writev": 311}),
    EventType("kill", RecordType.SYSCALL, sa.kill, (
        _ARG_PID,
        Field("evt.arg.tid", int, "tkill/tgkill: target thread id"),
        Field("evt.arg.sig", str, "signal: SIGKILL, SIGTERM, ... (SIG0 probes)"),
        Field("evt.target.pid", int, "kill: the process the kernel signalled (tgid), or the one named"),
        Field("evt.target.uid", int, "kill: real uid of the target (recorded only when it is not the "
              "sender's, or the kernel refused with EPERM); -1 if unknown"),
        Field("evt.target.uid_source", str, "kernel (the task signalled) or procfs (a refused kill: "
              "read from /proc after the call)"),
    ), types={"kill": 62, "tkill": 200, "tgkill": 234}),
    # io_uring_setup; operations submitted through a ring are openat/openat2/connect
    # events with evt.is_io_uring (monitor/events/uring.py).
    EventType("io_uring", RecordType.SYSCALL, uring.setup, uring.SETUP_FIELDS,
              types={"io_uring_setup": 425}),
    # Enforcement (deny/audit rules, bpf/lsm.bpf.c): conditions of deny rules and the
    # fields of evt.type "enforce" events.
    EventType("enforce", RecordType.DENY, _deny, (
        *RESULT, FD_NAME, FD_SIP, FD_SPORT, FD_RIP, FD_RPORT, FD_SIP_NAME,
        Field("fd.snet", str, "destination network, CIDR (deny rules: fd.snet in [\"10.0.0.0/8\"])"),
        Field("enforce.action", str, "deny (the kernel refused the operation) or audit (reported only)"),
        Field("enforce.op", str, "operation an enforce event is about: exec, open or connect"),
        Field("enforce.rule", str, "name of the deny/audit rule that matched"),
        Field("enforce.rule_id", int, "kernel id of that rule (changes across reloads)"),
    ), FilterRole.ENFORCE, {DENY_EVENT_TYPE: None}),
    # The kernel refused a process's syscall records (over its or its cgroup's budget);
    # the header is that process. Sent on the process lane, always.
    EventType("throttle", RecordType.THROTTLE, _throttle, (
        Field("throttle.scope", str, "throttle events: process or cgroup, the budget that ran out"),
        Field("throttle.count", int, "throttle events: records that budget refused so far"),
        Field("throttle.rate", int, "throttle events: the budget, records per second"),
        Field("throttle.burst", int, "throttle events: the budget's burst"),
    ), FilterRole.PROCESS, {"throttle": None}),
)


@dataclass(frozen=True)
class Catalogue:
    """Lookups derived from the entries, built once."""

    entries: tuple[EventType, ...]

    def __post_init__(self) -> None:
        by_type: dict[str, EventType] = {}
        by_nr: dict[int, tuple[str, EventType]] = {}
        for entry in self.entries:
            for name, nr in entry.types.items():
                if name in by_type:
                    raise ValueError(f"event type {name!r} declared by {by_type[name].family!r} "
                                     f"and {entry.family!r}")
                by_type[name] = entry
                if nr is not None:
                    if nr in by_nr:
                        raise ValueError(f"syscall {nr} declared as {by_nr[nr][0]!r} and {name!r}")
                    by_nr[nr] = (name, entry)
        object.__setattr__(self, "_by_type", by_type)
        object.__setattr__(self, "_by_nr", by_nr)

    @property
    def by_type(self) -> Mapping[str, EventType]:
        return self._by_type  # type: ignore[attr-defined, no-any-return]

    @property
    def by_number(self) -> Mapping[int, tuple[str, EventType]]:
        return self._by_nr  # type: ignore[attr-defined, no-any-return]

    def syscalls(self) -> dict[str, int]:
        """evt.type -> syscall number, for every type that is a syscall."""
        return {name: nr for e in self.entries for name, nr in e.types.items() if nr is not None}

    def event_types(self) -> frozenset[str]:
        return frozenset(self.by_type)

    def types_with_role(self, role: FilterRole) -> frozenset[str]:
        return frozenset(n for e in self.entries if e.role is role for n in e.types)

    def filtered_syscalls(self) -> dict[str, int]:
        """The syscalls the kernel's per-syscall filter decides on (not exec, fork, exit)."""
        kernel_filtered = (FilterRole.SYSCALL, FilterRole.OPEN_PATH, FilterRole.BPF_COMMAND)
        return {n: nr for e in self.entries if e.role in kernel_filtered
                for n, nr in e.types.items() if nr is not None}

    def wanted_numbers(self, event_types: set[str] | frozenset[str] | None) -> set[int]:
        """Syscall numbers the kernel must record for rules needing these event types (None: all)."""
        filtered = self.filtered_syscalls()
        if event_types is None:
            return set(filtered.values())
        return {filtered[t] for t in event_types if t in filtered}

    def kernel_defines(self) -> list[str]:
        """The numbers bpf/sensor.bpf.c compiles with: it declares none of its own."""
        return [f"-DRW_NR_{name}={nr}" for name, nr in sorted(self.syscalls().items())]

    def fields(self) -> dict[str, Field]:
        """Every field an event can carry, each once (families share declarations)."""
        table: dict[str, Field] = {}
        for f in (*COMMON, *LINEAGE, *RESULT, *CONTAINER, *COALESCE, *creds.FIELDS,
                  *(f for e in self.entries for f in e.fields)):
            seen = table.setdefault(f.name, f)
            if seen.type is not f.type:
                raise ValueError(f"field {f.name!r} declared as {seen.type.__name__} and {f.type.__name__}")
        return table

    def setters(self) -> dict[str, list[str]]:
        """field -> the families that set it (common fields: none listed)."""
        out: dict[str, list[str]] = {}
        for e in self.entries:
            for f in e.fields:
                if e.family not in out.setdefault(f.name, []):
                    out[f.name].append(e.family)
        return out


CATALOGUE = Catalogue(CATALOG)
FIELDS: dict[str, Field] = CATALOGUE.fields()
# What the rules engine is handed: it knows no fields of its own.
FIELD_TYPES: Mapping[str, type] = MappingProxyType({name: f.type for name, f in FIELDS.items()})
ALL_EVENT_TYPES = CATALOGUE.event_types()
OPEN_TYPES = CATALOGUE.types_with_role(FilterRole.OPEN_PATH)
EXEC_TYPES = frozenset(CATALOGUE.by_type["execve"].types)


def is_field(name: str) -> bool:
    return name in FIELDS


def describe() -> list[dict[str, Any]]:
    """What `ringwatch rules fields` prints: name, type, description, the families that set it."""
    setters = CATALOGUE.setters()
    return [{"name": f.name, "type": f.type.__name__, "desc": f.desc, "events": setters.get(f.name, [])}
            for f in FIELDS.values()]
