"""Behaviours for tests/test_rules_coverage_kernel.py that need raw syscalls, run as a child:

    python tests/coverage_rules_actions.py ACTION [ARG...]

Each action makes the real syscall and prints one JSON object: the pid that made it
("pid"), its parent ("ppid") and the syscall's result where the test checks it.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import socket
import sys
from typing import Any

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR_DUP = 32
NR_SETNS = 308
NR_PROCESS_VM_WRITEV = 311


def _sys(nr: int, *args: Any) -> int:
    ctypes.set_errno(0)
    ret = int(libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args)))
    return ret if ret >= 0 else -ctypes.get_errno()


def _me(**extra: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "ppid": os.getppid(), **extra}


class _Iov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def vm_write(where: str) -> dict[str, Any]:
    """process_vm_writev into a forked child's copy of a buffer ("child"), or into our own
    memory ("self")."""
    buf = ctypes.create_string_buffer(b"before", 16)
    src = ctypes.create_string_buffer(b"INJECTED")
    local, remote = _Iov(ctypes.addressof(src), 9), _Iov(ctypes.addressof(buf), 9)
    if where == "self":
        ret = _sys(NR_PROCESS_VM_WRITEV, os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        return _me(ret=ret, target=os.getpid(), landed=buf.value == b"INJECTED")
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.read(r, 1)
        os._exit(0 if buf.value == b"INJECTED" else 1)
    ret = _sys(NR_PROCESS_VM_WRITEV, child, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    os.write(w, b"x")
    _, status = os.waitpid(child, 0)
    return _me(ret=ret, target=child, landed=os.waitstatus_to_exitcode(status) == 0)


def setns_wait(target: str) -> None:
    """setns into the target's UTS namespace (the host's: the fd decides the type), report,
    then stay alive until stdin closes (the monitor names the container from
    /proc/PID/cgroup)."""
    fd = os.open(f"/proc/{int(target)}/ns/uts", os.O_RDONLY)
    ret = _sys(NR_SETNS, fd, 0)
    print(json.dumps(_me(ret=ret)), flush=True)
    sys.stdin.read()


def dup_socket(port: str, how: str) -> dict[str, Any]:
    """A socket onto stdin without dup2: close(0), then dup(2) or fcntl(F_DUPFD)."""
    s = socket.create_connection(("127.0.0.1", int(port)))
    r, _w = os.pipe()
    os.close(0)
    if how == "dup":
        fd = _sys(NR_DUP, s.fileno())
    elif how == "fcntl":
        fd = fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 0)
    else:  # a pipe onto stdin: what shells do all day
        fd = _sys(NR_DUP, r)
    return _me(fd=fd)


def main() -> None:
    name, *args = sys.argv[1:]
    if name == "setns_wait":
        setns_wait(*args)
        return
    out = {"vm_write": vm_write, "dup_socket": dup_socket}[name](*args)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
