"""Python mirror of bpf/records.h and decoding of raw ring-buffer records.

The ctypes structures below must match the C header byte for byte;
tests/test_kernel_layout.py compiles the header and compares every size and offset.
"""

from __future__ import annotations

import ctypes as ct
import enum
from dataclasses import dataclass

COMM_LEN = 16
PATH_LEN = 256
ARGS_LEN = 1024
ARG_LEN = 256
ARGS_BUF = ARGS_LEN + ARG_LEN
MAX_ARGS = 32
OPEN_PREFIX_MAX = 256
AUX_LEN = 32
SC_F_PATH_FAILED = 1 << 0
SC_F_PATH_TRUNCATED = 1 << 1
SC_F_PATH2_FAILED = 1 << 2
SC_F_PATH2_TRUNCATED = 1 << 3
SC_F_ADDR_FAILED = 1 << 4
SC_F_SOCKET = 1 << 5
SC_F_BASE = 1 << 6
SC_F_BASE_TRUNCATED = 1 << 7
SC_F_RESOLVED = 1 << 8
SC_F_COUNT_ONLY = 1 << 31  # userspace only: a rebuilt record reporting repeats
SC_F_IO_URING = 1 << 30  # submitted through io_uring, not a syscall of its own
SC_F_URING_NO_RESULT = 1 << 29  # IOSQE_CQE_SKIP_SUCCESS: recorded at submission, ret unknown
ENV_LEN = 512
ENV_VAR_LEN = 256
ENV_BUF = ENV_LEN + ENV_VAR_LEN
ENV_CHUNK = 256
ENV_SCAN = 128
WALK_DEPTH = 32
PROC_ARGS_LEN = 128
PROC_F_BACKFILLED = 1 << 0
PROC_F_EXE_TRUNCATED = 1 << 1


class RecordType(enum.IntEnum):
    EXEC = 1
    FORK = 2
    EXIT = 3
    SYSCALL = 4
    THROTTLE = 5  # a process or cgroup went over its syscall record budget
    DENY = 16  # enforcement (bpf/lsm.bpf.c)


class DropReason(enum.IntEnum):
    RINGBUF_FULL = 0
    PENDING_FULL = 1
    EXIT_NO_ENTER = 2
    ARGV_TRUNCATED = 3
    FILENAME_FAILED = 4
    ARG_READ_FAILED = 5
    FILENAME_TRUNCATED = 6
    PATH_FAILED = 7
    PATH_TRUNCATED = 8
    ADDR_FAILED = 9
    SYSCALL_RINGBUF_FULL = 10  # the syscall lane's loss; RINGBUF_FULL is the process lane's


# Reasons that lose the whole record; the others lose part of one.
RECORD_LOST = frozenset(
    {DropReason.RINGBUF_FULL, DropReason.PENDING_FULL, DropReason.EXIT_NO_ENTER,
     DropReason.SYSCALL_RINGBUF_FULL}
)


class FloodStat(enum.IntEnum):
    """What the syscall lane did not send, and why (per-CPU `flood_stats`)."""

    COALESCED = 0
    THROTTLED_PROCESS = 1
    THROTTLED_CGROUP = 2


class ThrottleScope(enum.IntEnum):
    PROCESS = 1
    CGROUP = 2


# Lanes: which ring buffer each record type travels in, and which losses are whose.
PROCESS_LANE_TYPES = frozenset(
    {RecordType.EXEC, RecordType.FORK, RecordType.EXIT, RecordType.DENY, RecordType.THROTTLE}
)
SYSCALL_LANE_TYPES = frozenset({RecordType.SYSCALL})
PROCESS_LANE_LOST = frozenset(
    {DropReason.RINGBUF_FULL, DropReason.PENDING_FULL, DropReason.EXIT_NO_ENTER}
)
SYSCALL_LANE_LOST = frozenset({DropReason.SYSCALL_RINGBUF_FULL})

class LineageStat(enum.IntEnum):
    FORK_PARENT_MISSING = 0
    EXEC_MISSING = 1
    EXIT_MISSING = 2
    INSERTS = 3


EXEC_F_ARGV_TRUNCATED = 1 << 0
EXEC_F_FILENAME_FAILED = 1 << 1
EXEC_F_ARG_READ_FAILED = 1 << 2
EXEC_F_FILENAME_TRUNCATED = 1 << 3
EXEC_F_EXE_MEMFD = 1 << 4
EXEC_F_EXE_DELETED = 1 << 5
EXEC_F_EXEPATH = 1 << 6
EXEC_F_EXEPATH_TRUNCATED = 1 << 7
EXEC_F_CWD = 1 << 8
EXEC_F_ENV = 1 << 16
EXEC_F_ENV_SCAN_TRUNCATED = 1 << 17
EXEC_F_ENV_READ_FAILED = 1 << 18
EXEC_F_ENV_FULL = 1 << 19


class CHeader(ct.Structure):
    _fields_ = [
        ("type", ct.c_uint32),
        ("cpu", ct.c_uint32),
        ("ktime_ns", ct.c_uint64),
        ("pid", ct.c_uint32),
        ("tgid", ct.c_uint32),
        ("ppid", ct.c_uint32),
        ("uid", ct.c_uint32),
        ("gid", ct.c_uint32),
        ("_pad0", ct.c_uint32),
        ("cgroup_id", ct.c_uint64),
        ("start_ns", ct.c_uint64),
        ("comm", ct.c_char * COMM_LEN),
    ]


class CExec(ct.Structure):
    _fields_ = [
        ("h", CHeader),
        ("ret", ct.c_int64),
        ("syscall_nr", ct.c_uint32),
        ("flags", ct.c_uint32),
        ("argc", ct.c_uint32),
        ("args_len", ct.c_uint32),
        ("dirfd", ct.c_int32),
        ("at_flags", ct.c_uint32),
        ("exe_ino", ct.c_uint64),
        ("exe_ctime_ns", ct.c_uint64),
        ("exe_mtime_ns", ct.c_uint64),
        ("exe_uid", ct.c_uint32),
        ("exe_gid", ct.c_uint32),
        ("exe_nlink", ct.c_uint32),
        ("exe_mode", ct.c_uint16),
        ("_pad1", ct.c_uint16),
        ("exepath", ct.c_char * PATH_LEN),
        ("tty", ct.c_uint32),
        ("sid", ct.c_uint32),
        ("vpgid", ct.c_uint32),
        ("loginuid", ct.c_uint32),
        ("cwd", ct.c_char * PATH_LEN),
        ("filename", ct.c_char * PATH_LEN),
        ("args", ct.c_char * ARGS_BUF),
        ("env_count", ct.c_uint32),
        ("env_len", ct.c_uint32),
        ("env_cut", ct.c_uint64),
        ("env", ct.c_char * ENV_BUF),
    ]


class CFork(ct.Structure):
    _fields_ = [
        ("h", CHeader),
        ("parent_pid", ct.c_uint32),
        ("parent_tgid", ct.c_uint32),
        ("parent_start_ns", ct.c_uint64),
    ]


class CExit(ct.Structure):
    _fields_ = [
        ("h", CHeader),
        ("exit_status", ct.c_uint32),
        ("_pad1", ct.c_uint32),
    ]


class CSyscall(ct.Structure):
    _fields_ = [
        ("h", CHeader),
        ("count", ct.c_uint64),
        ("first_ns", ct.c_uint64),
        ("ret", ct.c_int64),
        ("args", ct.c_uint64 * 6),
        ("nr", ct.c_uint32),
        ("flags", ct.c_uint32),
        ("family", ct.c_uint16),
        ("port", ct.c_uint16),
        ("_pad1", ct.c_uint32),
        ("addr", ct.c_uint8 * 16),
        ("aux", ct.c_char * AUX_LEN),
        ("path", ct.c_char * PATH_LEN),
        ("path2", ct.c_char * PATH_LEN),
        ("kpath", ct.c_char * PATH_LEN),
    ]


SC_BODY_OFF = CSyscall.ret.offset
SC_BODY_LEN = ct.sizeof(CSyscall) - SC_BODY_OFF


class CCoalKey(ct.Structure):
    _fields_ = [
        ("tgid", ct.c_uint32),
        ("uid", ct.c_uint32),
        ("gid", ct.c_uint32),
        ("_pad", ct.c_uint32),
        ("cgroup_id", ct.c_uint64),
        ("exec_id", ct.c_uint64),
        ("comm", ct.c_char * COMM_LEN),
        ("body", ct.c_uint8 * SC_BODY_LEN),
    ]


class CCoalVal(ct.Structure):
    _fields_ = [
        ("window_ns", ct.c_uint64),
        ("pending", ct.c_uint64),
        ("first_ns", ct.c_uint64),
        ("last_ns", ct.c_uint64),
        ("tid", ct.c_uint32),
        ("ppid", ct.c_uint32),
        ("start_ns", ct.c_uint64),
        ("cpu", ct.c_uint32),
        ("_pad", ct.c_uint32),
    ]


class CBucket(ct.Structure):
    _fields_ = [
        ("tokens", ct.c_uint64),
        ("last_ns", ct.c_uint64),
        ("throttled", ct.c_uint64),
        ("notice_ns", ct.c_uint64),
    ]


class CThrottle(ct.Structure):
    _fields_ = [
        ("h", CHeader),
        ("scope", ct.c_uint32),
        ("nr", ct.c_uint32),
        ("throttled", ct.c_uint64),
        ("rate", ct.c_uint32),
        ("burst", ct.c_uint32),
    ]


class CPfxKey(ct.Structure):
    _fields_ = [
        ("prefixlen", ct.c_uint32),
        ("path", ct.c_char * PATH_LEN),
    ]


class CProcKey(ct.Structure):
    _fields_ = [
        ("tgid", ct.c_uint32),
        ("_pad", ct.c_uint32),
        ("start_ticks", ct.c_uint64),
    ]


class CProc(ct.Structure):
    _fields_ = [
        ("ppid", ct.c_uint32),
        ("uid", ct.c_uint32),
        ("pstart_ticks", ct.c_uint64),
        ("exec_ns", ct.c_uint64),
        ("exit_ns", ct.c_uint64),
        ("cgroup_id", ct.c_uint64),
        ("flags", ct.c_uint32),
        ("args_len", ct.c_uint32),
        ("comm", ct.c_char * COMM_LEN),
        ("exe", ct.c_char * PATH_LEN),
        ("args", ct.c_char * PROC_ARGS_LEN),
    ]


DENY_ANCESTORS = 4
DENY_F_AUDIT = 1 << 0


class DenyHook(enum.IntEnum):
    EXEC = 1  # bprm_check_security
    OPEN = 2  # file_open
    CONNECT = 3  # socket_connect


class CDeny(ct.Structure):
    _fields_ = [
        ("h", CHeader),
        ("hook", ct.c_uint32),
        ("rule_id", ct.c_uint32),
        ("ret", ct.c_int32),
        ("flags", ct.c_uint32),
        ("family", ct.c_uint16),
        ("port", ct.c_uint16),
        ("_pad1", ct.c_uint32),
        ("addr", ct.c_uint8 * 16),
        ("anc_pid", ct.c_uint32 * DENY_ANCESTORS),
        ("anc_comm", (ct.c_char * COMM_LEN) * DENY_ANCESTORS),
        ("path", ct.c_char * PATH_LEN),
    ]


# C struct name -> mirror, for the layout test.
MIRRORS: dict[str, type[ct.Structure]] = {
    "rw_syscall": CSyscall,
    "rw_pfx_key": CPfxKey,
    "rw_proc_key": CProcKey,
    "rw_proc": CProc,
    "rw_header": CHeader,
    "rw_exec": CExec,
    "rw_fork": CFork,
    "rw_exit": CExit,
    "rw_deny": CDeny,
    "rw_coal_key": CCoalKey,
    "rw_coal_val": CCoalVal,
    "rw_bucket": CBucket,
    "rw_throttle": CThrottle,
}


@dataclass(slots=True)
class Header:
    type: RecordType
    cpu: int
    ktime_ns: int
    pid: int
    tgid: int
    ppid: int
    uid: int
    gid: int
    cgroup_id: int
    start_ns: int
    comm: str


@dataclass(frozen=True, slots=True)
class ExeFile:
    """The file the kernel executed (bprm->file), whatever path string was passed."""

    path: str | None  # resolved by the kernel from its dentry and mount; None if too deep/long
    ino: int
    ctime_ns: int
    mtime_ns: int
    uid: int
    gid: int
    mode: int
    nlink: int
    deleted: bool

    def writable_by(self, uid: int, gid: int) -> bool:
        """Mode bits against owner and group: uid 0 can write any file (DAC override);
        supplementary groups, ACLs and read-only mounts are not considered."""
        if uid == 0:
            return True
        if self.uid == uid:
            return bool(self.mode & 0o200)
        if self.gid == gid:
            return bool(self.mode & 0o020)
        return bool(self.mode & 0o002)


@dataclass(slots=True)
class ExecRecord:
    h: Header
    ret: int
    # execve or execveat; named by the event catalogue, like every syscall number.
    syscall_nr: int
    filename: str
    argv: list[str]
    dirfd: int
    at_flags: int
    argv_truncated: bool
    filename_failed: bool
    arg_read_failed: bool
    filename_truncated: bool
    exe_from_memfd: bool = False
    exe: ExeFile | None = None  # None: the exec failed, or ran before sched_process_exec
    task: ExecTask | None = None  # likewise
    env: ExecEnv | None = None  # likewise


@dataclass(frozen=True, slots=True)
class ExecEnv:
    """Selected variables of the new image's environment, read by the kernel at exec."""

    entries: tuple[tuple[str, str], ...]  # (name, value) in environment order
    cut: frozenset[str]  # names whose value was cut at ENV_VAR_LEN - 1 bytes
    incomplete: bool  # the scan stopped early, a read failed, or the buffer was full


@dataclass(frozen=True, slots=True)
class ExecTask:
    """The process as the kernel had it at exec."""

    tty: int  # tty_nr encoding, 0 = none
    sid: int
    vpgid: int
    loginuid: int  # 4294967295 = never set
    cwd: str | None  # None if too deep or long to resolve


@dataclass(slots=True)
class ForkRecord:
    h: Header
    parent_pid: int
    parent_tgid: int
    parent_start_ns: int


@dataclass(slots=True)
class ExitRecord:
    h: Header
    exit_code: int
    signal: int


@dataclass(slots=True)
class DenyRecord:
    """An LSM decision that matched a deny rule: denied, or (audit) only reported."""

    h: Header
    hook: DenyHook
    rule_id: int
    ret: int
    audit: bool
    path: str
    family: int
    port: int
    addr: bytes  # 4 bytes for AF_INET, 16 for AF_INET6, empty for file hooks
    ancestors: list[tuple[int, str]]  # (tgid, comm), parent first; stops at pid 0


@dataclass(slots=True)
class SyscallRecord:
    h: Header
    nr: int
    ret: int
    args: tuple[int, ...]
    flags: int
    family: int
    port: int
    addr: bytes
    aux: str
    path: str
    path2: str
    # Directory the kernel saw a relative path relative to; None if not captured.
    base: str | None = None
    # The path of the file a successful open returned, resolved by the kernel.
    resolved: str | None = None
    # Coalescing: occurrences this record stands for, and when the first of them was
    # (CLOCK_MONOTONIC ns; h.ktime_ns is the last).
    count: int = 1
    first_ns: int = 0
    # Rebuilt by userspace from a coalescing entry nobody flushed: it only reports
    # `count` more repeats of an event already delivered; rules do not see it again.
    count_only: bool = False


@dataclass(slots=True)
class ThrottleRecord:
    """A process's syscall records went over a budget; h is that process."""

    h: Header
    scope: ThrottleScope
    nr: int
    throttled: int
    rate: int
    burst: int


Record = ExecRecord | ForkRecord | ExitRecord | DenyRecord | SyscallRecord | ThrottleRecord

def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _header(c: CHeader) -> Header:
    return Header(
        RecordType(c.type), c.cpu, c.ktime_ns, c.pid, c.tgid, c.ppid, c.uid, c.gid,
        c.cgroup_id, c.start_ns, _text(c.comm),
    )


class DecodeError(ValueError):
    """A ring-buffer record that is too short or of an unknown type."""


_SIZES = {RecordType.EXEC: ct.sizeof(CExec), RecordType.FORK: ct.sizeof(CFork),
          RecordType.EXIT: ct.sizeof(CExit), RecordType.DENY: ct.sizeof(CDeny),
          RecordType.SYSCALL: ct.sizeof(CSyscall), RecordType.THROTTLE: ct.sizeof(CThrottle)}


_ARGS_OFFSET = CExec.args.offset


def decode(data: int, size: int) -> Record:
    """Decode the record at address `data` (a bcc ring-buffer callback pointer)."""
    if size < ct.sizeof(CHeader):
        raise DecodeError(f"record of {size} bytes is shorter than its header")
    rtype = ct.cast(data, ct.POINTER(ct.c_uint32))[0]
    try:
        kind = RecordType(rtype)
    except ValueError as exc:
        raise DecodeError(f"unknown record type {rtype}") from exc
    if size < _SIZES[kind]:
        raise DecodeError(f"{kind.name} record of {size} bytes, expected {_SIZES[kind]}")
    if kind is RecordType.EXEC:
        e = ct.cast(data, ct.POINTER(CExec)).contents
        args = ct.string_at(data + _ARGS_OFFSET, min(e.args_len, ARGS_BUF))
        argv = [_text(a) for a in args.split(b"\0")[: e.argc]]
        return ExecRecord(
            _header(e.h), e.ret, e.syscall_nr,
            _text(e.filename), argv, e.dirfd, e.at_flags,
            bool(e.flags & EXEC_F_ARGV_TRUNCATED), bool(e.flags & EXEC_F_FILENAME_FAILED),
            bool(e.flags & EXEC_F_ARG_READ_FAILED), bool(e.flags & EXEC_F_FILENAME_TRUNCATED),
            bool(e.flags & EXEC_F_EXE_MEMFD), _exe_file(e), _exec_task(e), _exec_env(data, e),
        )
    if kind is RecordType.SYSCALL:
        r = ct.cast(data, ct.POINTER(CSyscall)).contents
        return SyscallRecord(
            _header(r.h), r.nr, r.ret, tuple(r.args), r.flags & ~SC_F_COUNT_ONLY, r.family, r.port,
            bytes(r.addr), _text(r.aux), _text(r.path), _text(r.path2),
            _text(r.kpath) if r.flags & SC_F_BASE else None,
            _text(r.kpath) if r.flags & SC_F_RESOLVED else None,
            r.count, r.first_ns or r.h.ktime_ns, bool(r.flags & SC_F_COUNT_ONLY),
        )
    if kind is RecordType.THROTTLE:
        t = ct.cast(data, ct.POINTER(CThrottle)).contents
        try:
            scope = ThrottleScope(t.scope)
        except ValueError as exc:
            raise DecodeError(f"throttle record with unknown scope {t.scope}") from exc
        return ThrottleRecord(_header(t.h), scope, t.nr, t.throttled, t.rate, t.burst)
    if kind is RecordType.DENY:
        return _decode_deny(ct.cast(data, ct.POINTER(CDeny)).contents)
    if kind is RecordType.FORK:
        f = ct.cast(data, ct.POINTER(CFork)).contents
        return ForkRecord(_header(f.h), f.parent_pid, f.parent_tgid, f.parent_start_ns)
    x = ct.cast(data, ct.POINTER(CExit)).contents
    return ExitRecord(_header(x.h), (x.exit_status >> 8) & 0xFF, x.exit_status & 0x7F)


_ENV_OFFSET = CExec.env.offset


def _exec_env(data: int, e: CExec) -> ExecEnv | None:
    if not e.flags & EXEC_F_ENV:
        return None
    raw = ct.string_at(data + _ENV_OFFSET, min(e.env_len, ENV_BUF))
    entries: list[tuple[str, str]] = []
    cut: set[str] = set()
    for i, item in enumerate(raw.split(b"\0")[: e.env_count]):
        name, _, value = _text(item).partition("=")
        entries.append((name, value))
        if i < 64 and e.env_cut >> i & 1:
            cut.add(name)
    incomplete = bool(e.flags & (EXEC_F_ENV_SCAN_TRUNCATED | EXEC_F_ENV_READ_FAILED | EXEC_F_ENV_FULL))
    return ExecEnv(tuple(entries), frozenset(cut), incomplete)


def _exec_task(e: CExec) -> ExecTask | None:
    if not e.flags & (EXEC_F_EXEPATH | EXEC_F_EXEPATH_TRUNCATED):
        return None  # sched_process_exec did not run: nothing of the task was read
    return ExecTask(e.tty, e.sid, e.vpgid, e.loginuid, _text(e.cwd) if e.flags & EXEC_F_CWD else None)


def _exe_file(e: CExec) -> ExeFile | None:
    if not e.flags & (EXEC_F_EXEPATH | EXEC_F_EXEPATH_TRUNCATED):
        return None
    return ExeFile(
        _text(e.exepath) if e.flags & EXEC_F_EXEPATH else None, e.exe_ino, e.exe_ctime_ns,
        e.exe_mtime_ns, e.exe_uid, e.exe_gid, e.exe_mode, e.exe_nlink,
        bool(e.flags & EXEC_F_EXE_DELETED),
    )


def _decode_deny(d: CDeny) -> DenyRecord:
    try:
        hook = DenyHook(d.hook)
    except ValueError as exc:
        raise DecodeError(f"DENY record with unknown hook {d.hook}") from exc
    ancestors = []
    for pid, comm in zip(d.anc_pid, d.anc_comm, strict=True):
        if not pid:
            break
        ancestors.append((int(pid), _text(comm.value)))
    addr_len = {2: 4, 10: 16}.get(d.family, 0) if hook == DenyHook.CONNECT else 0
    return DenyRecord(
        _header(d.h), hook, d.rule_id, d.ret, bool(d.flags & DENY_F_AUDIT),
        _text(d.path), d.family, d.port, bytes(d.addr)[:addr_len], ancestors,
    )
