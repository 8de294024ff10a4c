"""The one bpf(2) wrapper: everything ringwatch does to BPF objects outside bcc goes through it."""

from __future__ import annotations

import ctypes as ct
import functools
import os

SYS_BPF = 321  # x86_64


class BPFSyscallError(OSError):
    pass


@functools.cache
def _libc() -> ct.CDLL:
    lib = ct.CDLL(None, use_errno=True)
    lib.syscall.restype = ct.c_long
    return lib


def bpf(cmd: int, attr: ct.Structure) -> int:
    """bpf(cmd, &attr, sizeof attr); a negative return raises with errno."""
    rc = int(_libc().syscall(SYS_BPF, cmd, ct.byref(attr), ct.sizeof(attr)))
    if rc < 0:
        err = ct.get_errno()
        raise BPFSyscallError(err, os.strerror(err))
    return rc
