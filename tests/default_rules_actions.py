"""Attack behaviours (and their benign look-alikes) that need raw syscalls, run as a child
process by tests/test_rules_default_kernel.py:

    python tests/default_rules_actions.py ACTION [ARG...]

Each action makes the real syscall (failing ones included: the attempt is the behaviour)
and prints one JSON object on stdout: at least the pid that made the syscall ("pid") and
its parent ("ppid"), plus the syscall's result where the test checks it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable
from typing import Any

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

NR_PTRACE = 101
NR_INIT_MODULE = 175
NR_FINIT_MODULE = 313
NR_BPF = 321
PTRACE_TRACEME = 0
PTRACE_PEEKDATA = 2
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
BPF_PROG_LOAD = 5
BPF_PROG_GET_NEXT_ID = 11
PR_SET_NAME = 15
ETH_P_ALL = 0x0003


def _syscall(nr: int, *args: Any) -> tuple[int, int]:
    """(return value, errno) of a raw syscall."""
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *args)
    return int(ret), ctypes.get_errno() if ret < 0 else 0


def _me(**extra: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "ppid": os.getppid(), **extra}


def _long(v: int) -> ctypes.c_long:
    return ctypes.c_long(v)


def ptrace_attach(target: str) -> dict[str, Any]:
    pid = int(target)
    ret, err = _syscall(NR_PTRACE, _long(PTRACE_ATTACH), _long(pid), _long(0), _long(0))
    if ret == 0:
        os.waitpid(pid, 0x40000000)  # __WALL: the attach stop
        _syscall(NR_PTRACE, _long(PTRACE_DETACH), _long(pid), _long(0), _long(0))
    return _me(ret=ret, errno=err, target=pid)


def ptrace_peek(target: str) -> dict[str, Any]:
    """A read-only request on a process we do not trace (fails with ESRCH)."""
    pid = int(target)
    ret, err = _syscall(NR_PTRACE, _long(PTRACE_PEEKDATA), _long(pid), _long(0), _long(0))
    return _me(ret=ret, errno=err, target=pid)


def _in_child(body: Callable[[], None]) -> dict[str, Any]:
    """Run body in a forked child that then exits; report the child's pid."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        try:
            body()
        finally:
            os.write(w, b"x")
            os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    _, status = os.waitpid(child, 0)
    return {"pid": child, "ppid": os.getpid(), "status": status}


def ptrace_traceme() -> dict[str, Any]:
    """The child asks its parent (this process) to trace it, then exits without a stop."""

    def traceme() -> None:
        _syscall(NR_PTRACE, _long(PTRACE_TRACEME), _long(0), _long(0), _long(0))

    return _in_child(traceme)


def _set_comm(name: str) -> None:
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def module_load(garbage_path: str, comm: str = "") -> dict[str, Any]:
    """finit_module then init_module of a file that is not a module (both fail)."""
    if comm:
        _set_comm(comm)
    with open(garbage_path, "rb") as fh:
        data = fh.read()
        fret, ferr = _syscall(NR_FINIT_MODULE, _long(fh.fileno()), ctypes.c_char_p(b""), _long(0))
    buf = ctypes.create_string_buffer(data, len(data))
    iret, ierr = _syscall(NR_INIT_MODULE, buf, _long(len(data)), ctypes.c_char_p(b""))
    return _me(finit=[fret, ferr], init=[iret, ierr])


def _bpf(cmd: int) -> tuple[int, int]:
    attr = ctypes.create_string_buffer(128)  # zeroed: an invalid program / the first id
    return _syscall(NR_BPF, _long(cmd), attr, _long(len(attr)))


def bpf_prog_load() -> dict[str, Any]:
    ret, err = _bpf(BPF_PROG_LOAD)
    if ret >= 0:
        os.close(ret)
    return _me(ret=ret, errno=err)


def bpf_benign() -> dict[str, Any]:
    """What `bpftool prog list` starts with: enumerate program ids."""
    ret, err = _bpf(BPF_PROG_GET_NEXT_ID)
    return _me(ret=ret, errno=err)


def packet_socket() -> dict[str, Any]:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.close()
    return _me()


def inet_socket() -> dict[str, Any]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.close()
    return _me()


def dup_socket_stdio(port: str) -> dict[str, Any]:
    """A reverse shell's plumbing: the connection becomes stdin (dup2) and stderr (dup3)."""
    out = _me()
    s = socket.create_connection(("127.0.0.1", int(port)))
    os.dup2(s.fileno(), 0)  # dup2
    os.dup2(s.fileno(), 2, inheritable=False)  # dup3(O_CLOEXEC)
    return out


def dup_benign(port: str) -> dict[str, Any]:
    """A TCP socket onto fd 5, a unix socket and a file onto stdin: none is a reverse shell."""
    out = _me()
    s = socket.create_connection(("127.0.0.1", int(port)))
    os.dup2(s.fileno(), 5)
    a, _b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    os.dup2(a.fileno(), 0)
    fd = os.open("/dev/null", os.O_RDONLY)
    os.dup2(fd, 0)
    return out


def memfd_exec() -> dict[str, Any]:
    """Fileless execution: copy /bin/true into a memfd and fexecve it in a child."""
    fd = os.memfd_create("rw-payload", 0)
    with open(shutil.which("true") or "/bin/true", "rb") as src:
        os.write(fd, src.read())

    def run() -> None:
        os.execve(fd, ["rw-payload"], {})  # execveat(fd, "", AT_EMPTY_PATH)

    return _in_child(run)


def memfd_benign() -> dict[str, Any]:
    """A memfd used as scratch memory, and an ordinary exec of /bin/true."""
    fd = os.memfd_create("rw-scratch", 0)
    os.write(fd, b"scratch")

    def run() -> None:
        os.execv("/bin/true", ["true"])

    return _in_child(run)


def open_read(*paths: str) -> dict[str, Any]:
    results = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                fh.read(1)
            results.append(0)
        except OSError as exc:
            results.append(-(exc.errno or 0))
    return _me(results=results)


_OPEN_MODES = {"append": os.O_WRONLY | os.O_APPEND, "create": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
               "trunc": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "read": os.O_RDONLY}


def open_file(mode: str, path: str, data: str = "") -> dict[str, Any]:
    """open(2) with the named flags, write data (if any), close; the result or -errno."""
    try:
        fd = os.open(path, _OPEN_MODES[mode], 0o644)
    except OSError as exc:
        return _me(ret=-(exc.errno or 0))
    if data:
        os.write(fd, data.encode())
    os.close(fd)
    return _me(ret=0)


def renamed_connect(comm: str, port: str) -> dict[str, Any]:
    """prctl(PR_SET_NAME) to a trusted-looking name, then a TCP connection."""
    _set_comm(comm)
    with socket.create_connection(("127.0.0.1", int(port))):
        pass
    return _me()


def connect_tcp(port: str) -> dict[str, Any]:
    """A TCP connection attempt to 127.0.0.1:port (refused or not: the attempt counts)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        ret = s.connect_ex(("127.0.0.1", int(port)))
    finally:
        s.close()
    return _me(ret=ret)


def exec_deleted(path: str) -> dict[str, Any]:
    """Copy /bin/true to path, open it, delete it, and run the open file (execveat)."""
    shutil.copy("/bin/true", path)
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)

    def run() -> None:
        os.execve(fd, ["payload"], {})

    return _in_child(run)


def exec_empty_argv(path: str) -> dict[str, Any]:
    """execve(path, {NULL}, envp): argc 0, the PwnKit trigger."""

    def run() -> None:
        argv = (ctypes.c_char_p * 1)(None)
        envp = (ctypes.c_char_p * 2)(b"PATH=/usr/bin:/bin", None)
        libc.execve(path.encode(), argv, envp)

    return _in_child(run)


ACTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    f.__name__: f
    for f in (ptrace_attach, ptrace_peek, ptrace_traceme, module_load, bpf_prog_load, bpf_benign,
              packet_socket, inet_socket, dup_socket_stdio, dup_benign, memfd_exec, memfd_benign,
              open_read, open_file, renamed_connect, connect_tcp, exec_deleted, exec_empty_argv)
}


def main() -> None:
    action, *args = sys.argv[1:]
    result = ACTIONS[action](*args)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
