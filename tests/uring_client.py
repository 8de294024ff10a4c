"""Raw io_uring from Python (no liburing): submit one open or connect, print its result.

io_uring_setup, the three mmaps, one SQE and io_uring_enter, through ctypes, as a
program that avoids openat/connect would do ("curing"). Run as a script so the
operation has a process of its own:
    python -m tests.uring_client openat PATH [--skip-success] [--relative-to DIR] [--sqpoll]
    python -m tests.uring_client openat2 PATH
    python -m tests.uring_client connect HOST PORT
It prints one JSON line: {"pid", "res", "read"} (res: the CQE's result, or null with
--skip-success when none was posted).
"""

from __future__ import annotations

import argparse
import ctypes as ct
import json
import mmap
import os
import socket
import sys

NR_IO_URING_SETUP = 425
NR_IO_URING_ENTER = 426
IORING_OP_CONNECT, IORING_OP_OPENAT, IORING_OP_OPENAT2 = 16, 18, 28
IOSQE_CQE_SKIP_SUCCESS = 1 << 6
IORING_ENTER_GETEVENTS = 1
IORING_ENTER_SQ_WAKEUP = 2
IORING_SETUP_SQPOLL = 2
OFF_SQ_RING, OFF_CQ_RING, OFF_SQES = 0, 0x8000000, 0x10000000

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long
_libc.mmap.restype = ct.c_void_p
_libc.mmap.argtypes = [ct.c_void_p, ct.c_size_t, ct.c_int, ct.c_int, ct.c_int, ct.c_long]


class SqOff(ct.Structure):
    _fields_ = [(n, ct.c_uint32) for n in ("head", "tail", "ring_mask", "ring_entries", "flags",
                                           "dropped", "array", "resv1")] + [("user_addr", ct.c_uint64)]


class CqOff(ct.Structure):
    _fields_ = [(n, ct.c_uint32) for n in ("head", "tail", "ring_mask", "ring_entries", "overflow",
                                           "cqes", "flags", "resv1")] + [("user_addr", ct.c_uint64)]


class Params(ct.Structure):
    _fields_ = [(n, ct.c_uint32) for n in ("sq_entries", "cq_entries", "flags", "sq_thread_cpu",
                                           "sq_thread_idle", "features", "wq_fd")] + [
        ("resv", ct.c_uint32 * 3), ("sq_off", SqOff), ("cq_off", CqOff)]


class Sqe(ct.Structure):
    _fields_ = [
        ("opcode", ct.c_uint8), ("flags", ct.c_uint8), ("ioprio", ct.c_uint16), ("fd", ct.c_int32),
        ("off", ct.c_uint64), ("addr", ct.c_uint64), ("len", ct.c_uint32), ("op_flags", ct.c_uint32),
        ("user_data", ct.c_uint64), ("buf_index", ct.c_uint16), ("personality", ct.c_uint16),
        ("file_index", ct.c_uint32), ("addr3", ct.c_uint64), ("pad", ct.c_uint64),
    ]


class OpenHow(ct.Structure):
    _fields_ = [("flags", ct.c_uint64), ("mode", ct.c_uint64), ("resolve", ct.c_uint64)]


class SockaddrIn(ct.Structure):
    _fields_ = [("family", ct.c_uint16), ("port", ct.c_uint16), ("addr", ct.c_uint8 * 4),
                ("zero", ct.c_uint8 * 8)]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ct.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


class Ring:
    """One io_uring with a few entries; submits one SQE at a time."""

    def __init__(self, entries: int = 4, sqpoll: bool = False) -> None:
        # SQPOLL: a kernel thread submits what the ring holds; no syscall submits anything.
        self.params = Params(flags=IORING_SETUP_SQPOLL if sqpoll else 0, sq_thread_idle=2000)
        self.fd = _check(_libc.syscall(NR_IO_URING_SETUP, entries, ct.byref(self.params)), "io_uring_setup")
        p = self.params
        prot, flags = mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED | 0x8000  # MAP_POPULATE
        sq_len = p.sq_off.array + p.sq_entries * 4
        cq_len = p.cq_off.cqes + p.cq_entries * 16
        self.sq = _libc.mmap(None, sq_len, prot, flags, self.fd, OFF_SQ_RING)
        self.cq = _libc.mmap(None, cq_len, prot, flags, self.fd, OFF_CQ_RING)
        self.sqes = _libc.mmap(None, p.sq_entries * ct.sizeof(Sqe), prot, flags, self.fd, OFF_SQES)
        for addr in (self.sq, self.cq, self.sqes):
            if addr in (None, ct.c_void_p(-1).value):
                raise OSError(ct.get_errno(), "mmap of the io_uring rings failed")

    def _u32(self, base: int, off: int) -> ct.c_uint32:
        return ct.c_uint32.from_address(base + off)

    def submit(self, sqe: Sqe, wait: bool = True) -> int | None:
        p = self.params
        tail = self._u32(self.sq, p.sq_off.tail)
        mask = self._u32(self.sq, p.sq_off.ring_mask).value
        idx = tail.value & mask
        ct.memmove(self.sqes + idx * ct.sizeof(Sqe), ct.byref(sqe), ct.sizeof(Sqe))
        self._u32(self.sq, p.sq_off.array + idx * 4).value = idx
        tail.value += 1  # ctypes stores are plain stores; x86 keeps them in order
        if p.flags & IORING_SETUP_SQPOLL:
            # The poller submits by itself; enter only waits for the completion (and wakes
            # the poller should it have gone idle).
            _check(_libc.syscall(NR_IO_URING_ENTER, self.fd, 0, 1 if wait else 0,
                                 (IORING_ENTER_GETEVENTS if wait else 0) | IORING_ENTER_SQ_WAKEUP,
                                 None, 0), "io_uring_enter")
        else:
            _check(_libc.syscall(NR_IO_URING_ENTER, self.fd, 1, 1 if wait else 0,
                                 IORING_ENTER_GETEVENTS if wait else 0, None, 0), "io_uring_enter")
        head = self._u32(self.cq, p.cq_off.head)
        if head.value == self._u32(self.cq, p.cq_off.tail).value:
            return None
        cmask = self._u32(self.cq, p.cq_off.ring_mask).value
        res = ct.c_int32.from_address(self.cq + p.cq_off.cqes + (head.value & cmask) * 16 + 8).value
        head.value += 1
        return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("op", choices=["openat", "openat2", "connect"])
    ap.add_argument("target")
    ap.add_argument("port", nargs="?", type=int)
    ap.add_argument("--skip-success", action="store_true")
    ap.add_argument("--relative-to", help="open target relative to this directory's fd")
    ap.add_argument("--sqpoll", action="store_true", help="a kernel thread submits (IORING_SETUP_SQPOLL)")
    a = ap.parse_args(argv)
    ring = Ring(sqpoll=a.sqpoll)
    sqe = Sqe()
    sqe.user_data = 0x5EED
    keep: list[object] = []
    if a.skip_success:
        sqe.flags |= IOSQE_CQE_SKIP_SUCCESS
    if a.op in ("openat", "openat2"):
        path = ct.create_string_buffer(a.target.encode())
        keep.append(path)
        sqe.fd = os.open(a.relative_to, os.O_RDONLY | os.O_DIRECTORY) if a.relative_to else -100
        sqe.addr = ct.addressof(path)
        if a.op == "openat":
            sqe.opcode, sqe.op_flags, sqe.len = IORING_OP_OPENAT, os.O_RDONLY, 0
        else:
            how = OpenHow(os.O_RDONLY, 0, 0)
            keep.append(how)
            sqe.opcode, sqe.len, sqe.off = IORING_OP_OPENAT2, ct.sizeof(how), ct.addressof(how)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        keep.append(s)
        sa = SockaddrIn(socket.AF_INET, socket.htons(a.port), (ct.c_uint8 * 4)(*socket.inet_aton(a.target)))
        keep.append(sa)
        sqe.opcode, sqe.fd, sqe.addr, sqe.off = IORING_OP_CONNECT, s.fileno(), ct.addressof(sa), ct.sizeof(sa)
    res = ring.submit(sqe, wait=not a.skip_success)
    read = None
    if a.op != "connect" and res is not None and res >= 0:
        read = len(os.read(res, 4096))  # the bytes really came through the io_uring fd
    print(json.dumps({"pid": os.getpid(), "res": res, "read": read}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
