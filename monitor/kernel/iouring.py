"""io_uring request tracing: the offsets its programs need and the tracepoints they attach to.

The io_uring programs in bpf/sensor.bpf.c (rw_uring_submit, rw_uring_complete) read
io_uring's private request structs (io_uring/*.c: struct io_kiocb, io_open, io_connect),
which no header describes: only the running kernel's BTF can place them. Without BTF, or
on a kernel without io_uring, they are compiled out and the sensor says so once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.kernel.btf import BTF, BTFError

# macro suffix -> (struct, member path), as monitor.kernel.offsets.KERNEL_FIELDS.
URING_FIELDS: dict[str, tuple[str, str]] = {
    "IO_KIOCB_OPCODE": ("io_kiocb", "opcode"),
    "IO_KIOCB_FLAGS": ("io_kiocb", "flags"),
    "IO_KIOCB_CMD": ("io_kiocb", "cmd"),
    "IO_KIOCB_CQE_RES": ("io_kiocb", "cqe.res"),
    "IO_KIOCB_CQE_FD": ("io_kiocb", "cqe.fd"),
    "IO_OPEN_DFD": ("io_open", "dfd"),
    "IO_OPEN_FILE_SLOT": ("io_open", "file_slot"),
    "IO_OPEN_FILENAME": ("io_open", "filename"),
    "IO_OPEN_HOW": ("io_open", "how"),
    "OPEN_HOW_FLAGS": ("open_how", "flags"),
    "OPEN_HOW_MODE": ("open_how", "mode"),
    "FILENAME_NAME": ("filename", "name"),
    "IO_CONNECT_ADDR": ("io_connect", "addr"),
    "IO_CONNECT_ADDR_LEN": ("io_connect", "addr_len"),
}

# The submission tracepoint was io_uring_submit_sqe until 6.4; both take the request.
SUBMIT_TRACEPOINTS = ("io_uring_submit_req", "io_uring_submit_sqe")
COMPLETE_TRACEPOINT = "io_uring_complete"


@dataclass(frozen=True, slots=True)
class UringSupport:
    cflags: tuple[str, ...]  # empty: the io_uring programs are compiled out
    reason: str  # why not, when cflags is empty


def detect(btf: BTF | BTFError) -> UringSupport:
    """What the io_uring programs need, from BTF.try_load's result."""
    try:
        if isinstance(btf, BTFError):
            raise btf
        values = {k: btf.offset_of(s, p) for k, (s, p) in URING_FIELDS.items()}
    except BTFError as exc:
        return UringSupport((), f"io_uring request layout unknown ({exc})")
    flags = [f"-DRW_OFF_{k}={v}" for k, v in values.items()]
    return UringSupport(tuple(flags), "")


def attach_second(bpf: Any, tp: str, fn_name: str) -> None:
    """Attach fn_name to a raw tracepoint that already has a program of this object.

    bcc keys attachments by tracepoint name and refuses a second one; the kernel does
    not. The link is filed under "tp#fn_name" so bcc's detach and cleanup (and the
    sensor's stop_tracing, which detaches every entry) close it with the others."""
    from bcc import BPF, lib

    fn = bpf.load_func(fn_name.encode(), BPF.RAW_TRACEPOINT)
    fd = lib.bpf_attach_raw_tracepoint(fn.fd, tp.encode())
    if fd < 0:
        raise OSError(f"cannot attach {fn_name} to raw tracepoint {tp}")
    bpf.raw_tracepoint_fds[f"{tp}#{fn_name}".encode()] = fd


def attach(bpf: Any) -> str:
    """Attach the io_uring programs; the submission tracepoint's name, or "" if none exists."""
    for name in SUBMIT_TRACEPOINTS:
        try:
            bpf.attach_raw_tracepoint(tp=name.encode(), fn_name=b"rw_uring_submit")
        except Exception:  # bcc raises bare Exception when the tracepoint does not exist
            continue
        bpf.attach_raw_tracepoint(tp=COMPLETE_TRACEPOINT.encode(), fn_name=b"rw_uring_complete")
        return name
    return ""
