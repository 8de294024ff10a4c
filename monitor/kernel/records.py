"""Python mirror of bpf/records.h and decoding of raw ring-buffer records.

The ctypes structures below must match the C header byte for byte;
tests/test_kernel_layout.py compiles the header and compares every size and offset.
"""

from __future__ import annotations

import ctypes as ct
import enum
import struct
from dataclasses import dataclass
from typing import Any

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
SC_F_SOCKINFO = 1 << 20  # sock_type/sock_protocol hold the kernel's socket of the fd
SC_F_BASE2 = 1 << 9
SC_F_LOCAL = 1 << 10
SC_F_TARGET = 1 << 11
SC_F_NSFS = 1 << 12
SC_F_TIMES = 1 << 13
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
EXEC_F_EXE_UPPER_LAYER = 1 << 20  # on overlayfs, in the upper (written) layer
EXEC_F_EXE_LOWER_LAYER = 1 << 21  # on overlayfs, in a lower (image) layer
EXEC_F_ARGS_FROM_KERNEL = 1 << 22  # argv/filename re-read at sched_process_exec (argc 0: all strings)
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
        ("cgroup1_id", ct.c_uint64),
        ("cwd", ct.c_char * PATH_LEN),
        ("filename", ct.c_char * PATH_LEN),
        ("args", ct.c_char * ARGS_BUF),
        ("cap_effective", ct.c_uint64),
        ("cap_permitted", ct.c_uint64),
        ("cap_inheritable", ct.c_uint64),
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
        ("cgroup1_id", ct.c_uint64),
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
        ("cap_effective", ct.c_uint64),
        ("cap_permitted", ct.c_uint64),
        ("cap_inheritable", ct.c_uint64),
        ("sock_type", ct.c_uint16),
        ("sock_protocol", ct.c_uint16),
        ("sock_family", ct.c_uint16),
        ("_pad2", ct.c_uint16),
        ("sock_lport", ct.c_uint16),
        ("sock_rport", ct.c_uint16),
        ("_pad3", ct.c_uint32),
        ("sock_laddr", ct.c_uint8 * 16),
        ("sock_raddr", ct.c_uint8 * 16),
        ("laddr", ct.c_uint8 * 16),
        ("lport", ct.c_uint16),
        ("_pad4", ct.c_uint16),
        ("target_uid", ct.c_uint32),
        ("target_pid", ct.c_uint32),
        ("target_tid", ct.c_uint32),
        ("path", ct.c_char * PATH_LEN),
        ("path2", ct.c_char * PATH_LEN),
        ("kpath", ct.c_char * PATH_LEN),
        ("kpath2", ct.c_char * PATH_LEN),
    ]


SC_BODY_OFF = CSyscall.ret.offset
SC_BODY_LEN = ct.sizeof(CSyscall) - SC_BODY_OFF
# The ring's form of a syscall record (struct rw_syscall_wire): the fixed part, then the
# strings' bytes only, in this order.
SC_FIXED_LEN = CSyscall.path.offset
SC_STRINGS = ("path", "path2", "kpath", "kpath2")
SC_STRS_BUF = (len(SC_STRINGS) + 1) * PATH_LEN


class CSyscallWire(ct.Structure):
    _fields_ = [
        ("fixed", ct.c_uint8 * SC_FIXED_LEN),
        ("len", ct.c_uint16 * len(SC_STRINGS)),
        ("strs", ct.c_char * SC_STRS_BUF),
    ]


SC_WIRE_HEAD = CSyscallWire.strs.offset


def wire(rec: CSyscall) -> bytes:
    """A whole syscall record in the ring's form, as bpf/sensor.bpf.c's send_syscall
    writes it (for records userspace rebuilds, and for tests)."""
    strings = [getattr(rec, name) for name in SC_STRINGS]  # c_char arrays read up to NUL
    return bytes(rec)[:SC_FIXED_LEN] + _SC_LENS.pack(*(len(b) for b in strings)) + b"".join(strings)


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
    "rw_syscall_wire": CSyscallWire,
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


@dataclass(frozen=True, slots=True)
class Caps:
    """A task's capability sets as the kernel held them (task->cred), bit n = capability n."""

    effective: int
    permitted: int
    inheritable: int


class Layer(enum.Enum):
    """Where on overlayfs the executed file is (Falco's proc.is_exe_upper/lower_layer)."""

    NONE = "none"  # not on overlayfs
    UPPER = "upper"  # in the upper layer: written after the mount (a container's writes)
    LOWER = "lower"  # in a lower layer (a container's image)


@dataclass(frozen=True, slots=True)
class SockInfo:
    """The kernel's socket behind an fd: sk->sk_family, sk_type, sk_protocol and its two ends
    (addresses: 4 bytes for AF_INET, 16 for AF_INET6, empty otherwise; zero while unset)."""

    family: int
    type: int
    protocol: int
    laddr: bytes = b""
    lport: int = 0
    raddr: bytes = b""
    rport: int = 0


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
    caps: Caps | None = None  # at sys_exit: the new image's after a successful exec
    layer: Layer = Layer.NONE  # of the executed file (meaningful when exe is not None)
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
    cgroup1_id: int = 0  # its cgroup in one v1 hierarchy (monitor/kernel/cgroups.py); 0: none


@dataclass(slots=True)
class ForkRecord:
    h: Header
    parent_pid: int
    parent_tgid: int
    parent_start_ns: int
    cgroup1_id: int = 0  # the child's cgroup in one v1 hierarchy, as ExecTask.cgroup1_id


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
    caps: Caps | None = None  # the caller's, at the event
    sock: SockInfo | None = None  # the kernel's socket of the fd, when the syscall has one
    # Coverage: the directory of a relative first (source) path, from the kernel.
    base2: str | None = None
    # The socket's local end from its kernel sock (bind, listen, accept, UDP sends).
    laddr: bytes = b""
    lport: int = 0
    # kill: the task the kernel signalled, (tgid, tid, real uid); None if none was.
    target: tuple[int, int, int] | None = None
    # aux's bytes as stored (utimensat's timespecs are binary).
    aux_raw: bytes = b""


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


def _cstr(raw: bytes) -> str:
    """A char[N] field, or a wire record's string, as C reads it: up to the first NUL (most
    optional fields are empty; a wire string may be zero bytes long)."""
    return raw.partition(b"\0")[0].decode("utf-8", "surrogateescape") if raw and raw[0] else ""


# -- struct layouts, derived from the ctypes mirrors ---------------------------------------
# The ctypes structures above stay the one definition (checked against C by the layout
# test). Reading fields through ctypes costs about 3 us a record; one precompiled
# struct.Struct per record type, built from the same _fields_ and offsets, unpacks a whole
# record in one call. Nested structures are flattened ("h.pid"), char arrays become bytes,
# byte arrays bytes, other arrays one value per element.

_SCALAR_CODES: dict[Any, str] = {
    ct.c_uint8: "B", ct.c_int8: "b", ct.c_uint16: "H", ct.c_int16: "h",
    ct.c_uint32: "I", ct.c_int32: "i", ct.c_uint64: "Q", ct.c_int64: "q",
}


@dataclass(frozen=True)
class Layout:
    """A ctypes mirror as one struct.Struct: `index[name]` is the position of a
    (flattened) field in the unpacked tuple; arrays of scalars take `count` positions."""

    struct: struct.Struct
    index: dict[str, int]
    count: dict[str, int]

    def unpack(self, buf: bytes | memoryview) -> tuple[object, ...]:
        return self.struct.unpack_from(buf)


def _scalar_code(ctype: Any) -> str:
    for base, code in _SCALAR_CODES.items():
        if ct.sizeof(ctype) == ct.sizeof(base) and ctype._type_ == base._type_:
            return code
    raise TypeError(f"no struct code for {ctype!r}")


def _flatten(cls: type[ct.Structure], base: int, prefix: str,
             out: list[tuple[int, str, str, int]]) -> None:
    for fname, ftype, *_ in cls._fields_:
        off = base + getattr(cls, fname).offset
        name = prefix + fname
        t: Any = ftype  # ctypes' array attributes (_type_, _length_) are not in its stubs
        if isinstance(t, type) and issubclass(t, ct.Structure):
            _flatten(t, off, name + ".", out)
        elif isinstance(t, type) and issubclass(t, ct.Array):
            elem: Any = t._type_
            n = ct.sizeof(t) // ct.sizeof(elem)
            if elem in (ct.c_char, ct.c_uint8):
                out.append((off, name, f"{n}s", 1))
            elif isinstance(elem, type) and issubclass(elem, ct.Array):
                # An array of char arrays (names): one bytes value per element.
                out.append((off, name, f"{ct.sizeof(elem)}s" * n, n))
            else:
                out.append((off, name, _scalar_code(elem) * n, n))
        else:
            out.append((off, name, _scalar_code(t), 1))


def layout(cls: type[ct.Structure], end: int | None = None) -> Layout:
    """`cls` as one struct.Struct; with `end`, only its first `end` bytes (the fields
    that lie there)."""
    fields: list[tuple[int, str, str, int]] = []
    _flatten(cls, 0, "", fields)
    size = ct.sizeof(cls) if end is None else end
    fmt, index, count, pos, at = ["<"], {}, {}, 0, 0
    for off, name, code, n in sorted(fields):
        if off >= size:
            continue
        if off > at:
            fmt.append(f"{off - at}x")  # padding the compiler inserted
        fmt.append(code)
        index[name], count[name] = pos, n
        pos += n
        at = off + struct.calcsize("<" + code)
    if size > at:
        fmt.append(f"{size - at}x")
    s = struct.Struct("".join(fmt))
    if s.size != size:
        raise TypeError(f"{cls.__name__}: struct layout of {s.size} bytes, ctypes {size}")
    return Layout(s, index, count)


LAYOUTS: dict[str, Layout] = {cname: layout(cls) for cname, cls in MIRRORS.items()}
_EXEC, _FORK, _EXIT = LAYOUTS["rw_exec"], LAYOUTS["rw_fork"], LAYOUTS["rw_exit"]
_THROTTLE, _DENY = LAYOUTS["rw_throttle"], LAYOUTS["rw_deny"]
_HEADER = LAYOUTS["rw_header"]
# What the ring carries of a syscall record before its strings (rw_syscall_wire.fixed).
_SC_FIXED = layout(CSyscall, SC_FIXED_LEN)
_SC_LENS = struct.Struct(f"<{len(SC_STRINGS)}H")
# The header comes first in every record: its fields are the first positions of each tuple.
_H_TYPE, _H_CPU, _H_KTIME, _H_PID, _H_TGID, _H_PPID, _H_UID, _H_GID, _H_CGROUP, _H_START, _H_COMM = (
    _HEADER.index[n] for n in ("type", "cpu", "ktime_ns", "pid", "tgid", "ppid", "uid", "gid",
                               "cgroup_id", "start_ns", "comm"))
_TYPES = {t.value: t for t in RecordType}


def _fields(lay: Layout, *names: str) -> tuple[int, ...]:
    return tuple(lay.index[n] for n in names)


(_E_RET, _E_NR, _E_FLAGS, _E_ARGC, _E_ARGS_LEN, _E_DIRFD, _E_AT_FLAGS, _E_INO, _E_CTIME, _E_MTIME,
 _E_UID, _E_GID, _E_NLINK, _E_MODE, _E_EXEPATH, _E_TTY, _E_SID, _E_VPGID, _E_LOGINUID, _E_CGROUP1,
 _E_CWD, _E_FILENAME) = _fields(
    _EXEC, "ret", "syscall_nr", "flags", "argc", "args_len", "dirfd", "at_flags", "exe_ino",
    "exe_ctime_ns", "exe_mtime_ns", "exe_uid", "exe_gid", "exe_nlink", "exe_mode", "exepath", "tty",
    "sid", "vpgid", "loginuid", "cgroup1_id", "cwd", "filename")
(_S_COUNT, _S_FIRST, _S_RET, _S_ARGS, _S_NR, _S_FLAGS, _S_FAMILY, _S_PORT, _S_ADDR, _S_AUX) = _fields(
    _SC_FIXED, "count", "first_ns", "ret", "args", "nr", "flags", "family", "port", "addr", "aux")
_S_NARGS = _SC_FIXED.count["args"]
_S_LADDR, _S_LPORT, _S_TARGET_PID, _S_TARGET_TID, _S_TARGET_UID = _fields(
    _SC_FIXED, "laddr", "lport", "target_pid", "target_tid", "target_uid")
_E_CAP_E, _E_CAP_P, _E_CAP_I = _fields(_EXEC, "cap_effective", "cap_permitted", "cap_inheritable")
_E_ENV_COUNT, _E_ENV_LEN, _E_ENV_CUT = _fields(_EXEC, "env_count", "env_len", "env_cut")
_S_CAP_E, _S_CAP_P, _S_CAP_I = _fields(_SC_FIXED, "cap_effective", "cap_permitted", "cap_inheritable")
(_S_SOCK_FAMILY, _S_SOCK_TYPE, _S_SOCK_PROTOCOL, _S_SOCK_LADDR, _S_SOCK_LPORT, _S_SOCK_RADDR,
 _S_SOCK_RPORT) = _fields(_SC_FIXED, "sock_family", "sock_type", "sock_protocol", "sock_laddr",
                          "sock_lport", "sock_raddr", "sock_rport")
_F_PPID, _F_PTGID, _F_PSTART, _F_CGROUP1 = _fields(
    _FORK, "parent_pid", "parent_tgid", "parent_start_ns", "cgroup1_id")
_X_STATUS = _EXIT.index["exit_status"]
_T_SCOPE, _T_NR, _T_THROTTLED, _T_RATE, _T_BURST = _fields(
    _THROTTLE, "scope", "nr", "throttled", "rate", "burst")
(_D_HOOK, _D_RULE, _D_RET, _D_FLAGS, _D_FAMILY, _D_PORT, _D_ADDR, _D_ANC_PID, _D_ANC_COMM,
 _D_PATH) = _fields(
    _DENY, "hook", "rule_id", "ret", "flags", "family", "port", "addr", "anc_pid", "anc_comm", "path")


def _header(v: tuple[Any, ...]) -> Header:
    return Header(_TYPES[v[_H_TYPE]], v[_H_CPU], v[_H_KTIME], v[_H_PID], v[_H_TGID], v[_H_PPID],
                  v[_H_UID], v[_H_GID], v[_H_CGROUP], v[_H_START], _cstr(v[_H_COMM]))


class DecodeError(ValueError):
    """A ring-buffer record that is too short or of an unknown type."""


_SIZES = {RecordType.EXEC: ct.sizeof(CExec), RecordType.FORK: ct.sizeof(CFork),
          RecordType.EXIT: ct.sizeof(CExit), RecordType.DENY: ct.sizeof(CDeny),
          RecordType.SYSCALL: SC_WIRE_HEAD, RecordType.THROTTLE: ct.sizeof(CThrottle)}


_ARGS_OFFSET = CExec.args.offset
_HEADER_SIZE = ct.sizeof(CHeader)


def decode(data: int, size: int) -> Record:
    """Decode the record at address `data` (a bcc ring-buffer callback pointer)."""
    if size < _HEADER_SIZE:
        raise DecodeError(f"record of {size} bytes is shorter than its header")
    return decode_bytes(ct.string_at(data, size))


def decode_bytes(buf: bytes) -> Record:
    """Decode one record from its bytes."""
    size = len(buf)
    if size < _HEADER_SIZE:
        raise DecodeError(f"record of {size} bytes is shorter than its header")
    rtype = int.from_bytes(buf[:4], "little")
    kind = _TYPES.get(rtype)
    if kind is None:
        raise DecodeError(f"unknown record type {rtype}")
    if size < _SIZES[kind]:
        raise DecodeError(f"{kind.name} record of {size} bytes, expected {_SIZES[kind]}")
    if kind is RecordType.SYSCALL:
        v = _SC_FIXED.struct.unpack_from(buf)
        n_path, n_path2, n_kpath, n_kpath2 = _SC_LENS.unpack_from(buf, SC_FIXED_LEN)
        # Where each string starts in the record, and where the last one ends.
        path2_at = SC_WIRE_HEAD + n_path
        kpath_at = path2_at + n_path2
        kpath2_at = kpath_at + n_kpath
        end = kpath2_at + n_kpath2
        if end > size:
            raise DecodeError(f"SYSCALL record of {size} bytes: strings of "
                              f"{n_path}+{n_path2}+{n_kpath}+{n_kpath2} bytes do not fit")
        flags = v[_S_FLAGS]
        kpath = _cstr(buf[kpath_at:kpath2_at]) if flags & (SC_F_BASE | SC_F_RESOLVED) else None
        return SyscallRecord(
            _header(v), v[_S_NR], v[_S_RET], v[_S_ARGS:_S_ARGS + _S_NARGS], flags & ~SC_F_COUNT_ONLY,
            v[_S_FAMILY], v[_S_PORT], v[_S_ADDR], _cstr(v[_S_AUX]),
            _cstr(buf[SC_WIRE_HEAD:path2_at]), _cstr(buf[path2_at:kpath_at]),
            kpath if flags & SC_F_BASE else None,
            kpath if flags & SC_F_RESOLVED else None,
            v[_S_COUNT], v[_S_FIRST] or v[_H_KTIME], bool(flags & SC_F_COUNT_ONLY),
            Caps(v[_S_CAP_E], v[_S_CAP_P], v[_S_CAP_I]),
            _sock_info(v) if flags & SC_F_SOCKINFO else None,
            base2=_cstr(buf[kpath2_at:end]) if flags & SC_F_BASE2 else None,
            laddr=v[_S_LADDR] if flags & SC_F_LOCAL else b"", lport=v[_S_LPORT],
            target=(v[_S_TARGET_PID], v[_S_TARGET_TID], v[_S_TARGET_UID]) if flags & SC_F_TARGET else None,
            aux_raw=v[_S_AUX],
        )
    if kind is RecordType.EXEC:
        v = _EXEC.struct.unpack_from(buf)
        flags = v[_E_FLAGS]
        args = buf[_ARGS_OFFSET:_ARGS_OFFSET + min(v[_E_ARGS_LEN], ARGS_BUF)]
        argv_cut = False
        if flags & EXEC_F_ARGS_FROM_KERNEL and v[_E_ARGC] == 0:
            # The kernel's argument area: every NUL-terminated string (the last ends it).
            parts = args.split(b"\0")
            if args.endswith(b"\0"):
                parts.pop()
            argv_cut = len(parts) > MAX_ARGS
            argv = [_text(a) for a in parts[:MAX_ARGS]]
        else:
            argv = [_text(a) for a in args.split(b"\0")[: v[_E_ARGC]]]
        exe: ExeFile | None = None
        task: ExecTask | None = None
        # Without EXEPATH(_TRUNCATED) sched_process_exec did not run: nothing of the task was read.
        if flags & (EXEC_F_EXEPATH | EXEC_F_EXEPATH_TRUNCATED):
            exe = ExeFile(
                _cstr(v[_E_EXEPATH]) if flags & EXEC_F_EXEPATH else None, v[_E_INO], v[_E_CTIME],
                v[_E_MTIME], v[_E_UID], v[_E_GID], v[_E_MODE], v[_E_NLINK],
                bool(flags & EXEC_F_EXE_DELETED),
            )
            task = ExecTask(v[_E_TTY], v[_E_SID], v[_E_VPGID], v[_E_LOGINUID],
                            _cstr(v[_E_CWD]) if flags & EXEC_F_CWD else None, v[_E_CGROUP1])
        return ExecRecord(
            _header(v), v[_E_RET], v[_E_NR], _cstr(v[_E_FILENAME]), argv, v[_E_DIRFD], v[_E_AT_FLAGS],
            bool(flags & EXEC_F_ARGV_TRUNCATED) or argv_cut, bool(flags & EXEC_F_FILENAME_FAILED),
            bool(flags & EXEC_F_ARG_READ_FAILED), bool(flags & EXEC_F_FILENAME_TRUNCATED),
            bool(flags & EXEC_F_EXE_MEMFD), exe, task,
            Caps(v[_E_CAP_E], v[_E_CAP_P], v[_E_CAP_I]), _layer(flags), env=_exec_env(buf, v),
        )
    if kind is RecordType.THROTTLE:
        v = _THROTTLE.struct.unpack_from(buf)
        try:
            scope = ThrottleScope(v[_T_SCOPE])
        except ValueError as exc:
            raise DecodeError(f"throttle record with unknown scope {v[_T_SCOPE]}") from exc
        return ThrottleRecord(_header(v), scope, v[_T_NR], v[_T_THROTTLED], v[_T_RATE], v[_T_BURST])
    if kind is RecordType.DENY:
        return _decode_deny(_DENY.struct.unpack_from(buf))
    if kind is RecordType.FORK:
        v = _FORK.struct.unpack_from(buf)
        return ForkRecord(_header(v), v[_F_PPID], v[_F_PTGID], v[_F_PSTART], v[_F_CGROUP1])
    v = _EXIT.struct.unpack_from(buf)
    status = v[_X_STATUS]
    return ExitRecord(_header(v), (status >> 8) & 0xFF, status & 0x7F)


def _sock_info(v: tuple[Any, ...]) -> SockInfo:
    family = v[_S_SOCK_FAMILY]
    n = {2: 4, 10: 16}.get(family, 0)
    return SockInfo(family, v[_S_SOCK_TYPE], v[_S_SOCK_PROTOCOL], v[_S_SOCK_LADDR][:n], v[_S_SOCK_LPORT],
                    v[_S_SOCK_RADDR][:n], v[_S_SOCK_RPORT])


_ENV_OFFSET = CExec.env.offset


def _exec_env(buf: bytes, v: tuple[Any, ...]) -> ExecEnv | None:
    flags = v[_E_FLAGS]
    if not flags & EXEC_F_ENV:
        return None
    raw = buf[_ENV_OFFSET:_ENV_OFFSET + min(v[_E_ENV_LEN], ENV_BUF)]
    entries: list[tuple[str, str]] = []
    cut: set[str] = set()
    env_cut = v[_E_ENV_CUT]
    for i, item in enumerate(raw.split(b"\0")[: v[_E_ENV_COUNT]]):
        name, _, value = _text(item).partition("=")
        entries.append((name, value))
        if i < 64 and env_cut >> i & 1:
            cut.add(name)
    incomplete = bool(flags & (EXEC_F_ENV_SCAN_TRUNCATED | EXEC_F_ENV_READ_FAILED | EXEC_F_ENV_FULL))
    return ExecEnv(tuple(entries), frozenset(cut), incomplete)


def _layer(flags: int) -> Layer:
    if flags & EXEC_F_EXE_UPPER_LAYER:
        return Layer.UPPER
    if flags & EXEC_F_EXE_LOWER_LAYER:
        return Layer.LOWER
    return Layer.NONE


def _decode_deny(v: tuple[Any, ...]) -> DenyRecord:
    try:
        hook = DenyHook(v[_D_HOOK])
    except ValueError as exc:
        raise DecodeError(f"DENY record with unknown hook {v[_D_HOOK]}") from exc
    ancestors = []
    for i in range(DENY_ANCESTORS):
        pid = v[_D_ANC_PID + i]
        if not pid:
            break
        ancestors.append((pid, _cstr(v[_D_ANC_COMM + i])))
    family = v[_D_FAMILY]
    addr_len = {2: 4, 10: 16}.get(family, 0) if hook == DenyHook.CONNECT else 0
    return DenyRecord(
        _header(v), hook, v[_D_RULE], v[_D_RET], bool(v[_D_FLAGS] & DENY_F_AUDIT),
        _cstr(v[_D_PATH]), family, v[_D_PORT], v[_D_ADDR][:addr_len], ancestors,
    )
