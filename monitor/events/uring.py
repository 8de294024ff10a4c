"""io_uring: the io_uring_setup syscall, and fields of operations submitted through a ring.

An open or connect submitted through io_uring (IORING_OP_OPENAT, _OPENAT2, _CONNECT) is
recorded by the kernel (bpf/sensor.bpf.c, rw_uring_submit/rw_uring_complete) as the
syscall it stands for: evt.type openat, openat2 or connect, decoded like that syscall, so
every rule on those types judges it too. These fields say it came through a ring.
"""

from __future__ import annotations

from typing import Any

from monitor.events.fields import ARG_FLAGS, FD_NUM, Field
from monitor.events.paths import PathResolver
from monitor.kernel.records import SC_F_IO_URING, SC_F_URING_NO_RESULT, SyscallRecord

_OPS = {16: "IORING_OP_CONNECT", 18: "IORING_OP_OPENAT", 28: "IORING_OP_OPENAT2"}
_SETUP_FLAGS = [
    (1 << 0, "IORING_SETUP_IOPOLL"), (1 << 1, "IORING_SETUP_SQPOLL"), (1 << 2, "IORING_SETUP_SQ_AFF"),
    (1 << 3, "IORING_SETUP_CQSIZE"), (1 << 4, "IORING_SETUP_CLAMP"), (1 << 5, "IORING_SETUP_ATTACH_WQ"),
    (1 << 6, "IORING_SETUP_R_DISABLED"), (1 << 7, "IORING_SETUP_SUBMIT_ALL"),
    (1 << 8, "IORING_SETUP_COOP_TASKRUN"), (1 << 9, "IORING_SETUP_TASKRUN_FLAG"),
    (1 << 10, "IORING_SETUP_SQE128"), (1 << 11, "IORING_SETUP_CQE32"),
    (1 << 12, "IORING_SETUP_SINGLE_ISSUER"), (1 << 13, "IORING_SETUP_DEFER_TASKRUN"),
    (1 << 14, "IORING_SETUP_NO_MMAP"), (1 << 15, "IORING_SETUP_REGISTERED_FD_ONLY"),
    (1 << 16, "IORING_SETUP_NO_SQARRAY"),
]

IS_IO_URING = Field("evt.is_io_uring", bool, "syscall events: the operation was submitted through an "
                    "io_uring ring (no syscall of its own); openat, openat2 and connect events")
OP_FIELDS = (
    IS_IO_URING,
    Field("evt.io_uring_op", str, "io_uring operation of an evt.is_io_uring event: IORING_OP_OPENAT, "
          "IORING_OP_OPENAT2, IORING_OP_CONNECT"),
    Field("evt.io_uring_res_known", bool, "evt.res is the operation's result; false for a request "
          "with IOSQE_CQE_SKIP_SUCCESS, recorded at submission (evt.res 0)"),
    Field("evt.arg.file_slot", int, "io_uring opens into a fixed-file slot: the slot + 1 (0: a "
          "normal fd; fd.name is then the path given, not resolved from the opened file)"),
)
SETUP_FIELDS = (
    Field("evt.arg.entries", int, "io_uring_setup: submission queue entries requested"),
    ARG_FLAGS,
    FD_NUM,
)


# The event types an io_uring operation can be: they always say whether it was one.
OP_TYPES = frozenset({"open", "openat", "openat2", "connect"})


def op_fields(r: SyscallRecord, name: str) -> dict[str, Any]:
    """evt.is_io_uring on the types an operation can be; its own fields when it is one."""
    if not r.flags & SC_F_IO_URING:
        return {"evt.is_io_uring": False} if name in OP_TYPES else {}
    ev: dict[str, Any] = {
        "evt.is_io_uring": True,
        "evt.io_uring_op": _OPS.get(r.args[4], str(r.args[4])),
        "evt.io_uring_res_known": not r.flags & SC_F_URING_NO_RESULT,
    }
    if r.args[4] != 16:
        ev["evt.arg.file_slot"] = r.args[5]
    return ev


def setup(r: SyscallRecord, name: str, ev: dict[str, Any], res: PathResolver) -> None:
    ev["evt.arg.entries"] = r.args[0] & 0xFFFFFFFF
    ev["evt.arg.flags"] = "|".join(n for bit, n in _SETUP_FLAGS if r.args[2] & bit)
    ev["fd.num"] = r.ret if r.ret >= 0 else -1
