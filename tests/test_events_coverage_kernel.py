"""Coverage syscalls on the real kernel: each call is made for real and its event's fields
are checked against what the kernel did (the fd's real file, the socket's bound port, the
task signalled), including the evasions they exist for: relative paths, symlinks, an fd
instead of a path, dup/fcntl instead of dup2.

One `ringwatch run` for the module; the types are named in sensor.extra_event_types, so
the kernel filter is the one rules get (FilterRole.SYSCALL: recorded only when named). It
traces only a cgroup holding this test and its children (sensor.cgroups): with opens
named, a shared host's other work would otherwise fill the record file.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import test_rules_default_kernel as default_rules
from tests.monitor_proc import RunningMonitor
from tests.scoped_monitor import monitor_on

pytestmark = pytest.mark.kernel
Event = dict[str, Any]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
NOBODY = 65534
TYPES = [
    "dup", "fcntl", "dup2", "truncate", "ftruncate", "fchmod", "fchmodat2", "chown", "fchown",
    "lchown", "fchownat", "mkdir", "mkdirat", "setns", "unshare", "bind", "listen", "accept",
    "accept4", "sendto", "sendmsg", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
    "lremovexattr", "fremovexattr", "setxattrat", "removexattrat", "utimensat", "userfaultfd",
    "process_vm_writev", "kill", "tkill", "tgkill", "open", "openat", "rename", "renameat",
    "renameat2", "link", "linkat",
]


# A cgroup holding this test process, hence everything the tests start.
scope = default_rules.scope


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory, scope: Path) -> Iterator[RunningMonitor]:
    with monitor_on(tmp_path_factory.mktemp("coverage"), scope, RunningMonitor,
                    {"sensor": {"extra_event_types": TYPES}}) as m:
        yield m


def _find(mon: RunningMonitor, pred: Callable[[Event], bool], timeout: float = 45) -> Event:
    return mon.wait_for(pred, timeout=timeout)


def _of(types: tuple[str, ...], pid: int | None = None, **fields: Any) -> Callable[[Event], bool]:
    me = os.getpid() if pid is None else pid
    return lambda e: (e["evt.type"] in types and e["proc.pid"] == me
                      and all(e.get(k) == v for k, v in fields.items()))


def _none(mon: RunningMonitor, pred: Callable[[Event], bool]) -> None:
    assert not [e for e in mon.events() if pred(e)], "recorded, but the kernel should have dropped it"


def _sys(nr: int, *args: Any) -> int:
    ctypes.set_errno(0)
    # Every int as a full register: variadic ints leave the upper half undefined.
    ret = int(libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args)))
    return ret if ret >= 0 else -ctypes.get_errno()


def _child(body: Callable[[], int]) -> int:
    """Run body in a forked child; its pid (the child's exit status is body's result)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(body())
        except BaseException:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child {pid} failed: {status}"
    return pid


# --- sockets onto stdio ---------------------------------------------------------------------


def test_dup_and_fcntl_dupfd_of_a_socket_onto_stdin(mon: RunningMonitor) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    r, w = os.pipe()
    sock_fd = cli.fileno()

    def body() -> int:
        os.close(0)
        assert _sys(32, r) == 0  # dup of a pipe onto stdin: not what a reverse shell does
        os.close(0)
        assert _sys(32, cli.fileno()) == 0  # dup(2) itself (os.dup is fcntl(F_DUPFD_CLOEXEC))
        os.close(0)
        import fcntl
        assert fcntl.fcntl(cli.fileno(), fcntl.F_DUPFD, 0) == 0
        os.close(0)
        assert fcntl.fcntl(cli.fileno(), fcntl.F_DUPFD_CLOEXEC, 0) == 0
        return 0

    child = _child(body)
    srv.close()
    cli.close()
    ev = _find(mon, _of(("dup",), child))
    assert (ev["evt.arg.oldfd"], ev["evt.arg.newfd"]) == (sock_fd, 0)
    assert (ev["fd.rip"], ev["fd.rport"], ev["fd.type"]) == ("127.0.0.1", port, "ipv4")
    for cmd in ("F_DUPFD", "F_DUPFD_CLOEXEC"):
        ev = _find(mon, _of(("fcntl",), child, **{"evt.arg.cmd": cmd}))
        assert (ev["evt.arg.newfd"], ev["fd.name"]) == (0, f"127.0.0.1:{port}")
    _none(mon, _of(("dup",), child, **{"evt.arg.oldfd": r}))
    os.close(r)
    os.close(w)


# --- files changed in place -----------------------------------------------------------------


def test_truncate_and_ftruncate_report_the_real_file(mon: RunningMonitor, tmp_path: Path) -> None:
    real = tmp_path / "real.log"
    real.write_text("x" * 100)
    link = tmp_path / "innocent"
    link.symlink_to(real)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        os.truncate("innocent", 50)  # relative, and through a symlink
    finally:
        os.chdir(old)
    ev = _find(mon, _of(("truncate",), **{"fd.nameraw": "innocent"}))
    assert (ev["fd.name"], ev["evt.arg.length"], ev["fd.relative"]) == (str(real), 50, True)
    with open(link, "r+b") as fh:  # opened by the link's name, truncated by fd
        os.ftruncate(fh.fileno(), 0)
        ev = _find(mon, _of(("ftruncate",), **{"evt.arg.fd": fh.fileno()}))
    assert (ev["fd.name"], ev["fd.is_resolved"], ev["evt.arg.length"]) == (str(real), True, 0)
    assert real.stat().st_size == 0


def test_fchmod_and_fchmodat2(mon: RunningMonitor, tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_text("")
    link = tmp_path / "alias"
    link.symlink_to(target)
    fd = os.open(link, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o4755)
        ev = _find(mon, _of(("fchmod",), **{"evt.arg.fd": fd}))
        assert (ev["fd.name"], ev["evt.arg.mode"], ev["fd.is_resolved"]) == (str(target), 0o4755, True)
        # fchmodat2 (6.6+) with "" and AT_EMPTY_PATH: the fd's file, walked by the kernel.
        assert _sys(452, fd, b"", 0o700, AT_EMPTY_PATH) == 0
        ev = _find(mon, _of(("fchmodat2",), **{"evt.arg.mode": 0o700}))
        assert (ev["fd.name"], ev["fd.is_resolved"]) == (str(target), True)
        assert ev["evt.arg.flags"] == "AT_EMPTY_PATH"
    finally:
        os.close(fd)
    assert _sys(452, AT_FDCWD, str(link).encode(), 0o640, 0) == 0
    ev = _find(mon, _of(("fchmodat2",), **{"evt.arg.mode": 0o640}))
    assert ev["fd.name"] == str(target) and ev["fd.nameraw"] == str(link)
    assert target.stat().st_mode & 0o7777 == 0o640


def test_chown_family(mon: RunningMonitor, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    link = tmp_path / "l"
    link.symlink_to(f)
    os.chown(link, 1, 2)  # chown follows the link
    ev = _find(mon, _of(("chown",), **{"fd.nameraw": str(link)}))
    assert (ev["fd.name"], ev["evt.arg.uid"], ev["evt.arg.gid"]) == (str(f), 1, 2)
    os.lchown(link, 3, -1)  # lchown does not
    ev = _find(mon, _of(("lchown",)))
    assert (ev["fd.name"], ev["evt.arg.uid"], ev["evt.arg.gid"]) == (str(link), 3, -1)
    with open(f) as fh:
        os.fchown(fh.fileno(), 4, 4)
        ev = _find(mon, _of(("fchown",), **{"evt.arg.fd": fh.fileno()}))
    assert (ev["fd.name"], ev["evt.arg.uid"], ev["fd.is_resolved"]) == (str(f), 4, True)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chown("f", 5, 5, dir_fd=dfd)
        ev = _find(mon, _of(("fchownat",), **{"evt.arg.uid": 5}))
        assert (ev["fd.name"], ev["evt.arg.dirfd"], ev["fd.relative"]) == (str(f), dfd, True)
    finally:
        os.close(dfd)
    assert (f.stat().st_uid, f.stat().st_gid) == (5, 5)


def test_mkdir_relative_dirfd_and_through_a_linked_directory(mon: RunningMonitor, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    old = os.getcwd()
    os.chdir(real)
    try:
        os.mkdir(".hidden-a", 0o700)
    finally:
        os.chdir(old)
    ev = _find(mon, _of(("mkdir", "mkdirat"), **{"fd.nameraw": ".hidden-a"}))
    assert (ev["fd.name"], ev["fd.filename"]) == (str(real / ".hidden-a"), ".hidden-a")
    assert ev["fd.directory"] == str(real)
    assert ev["evt.arg.mode"] == 0o700
    dfd = os.open(real, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkdir(".hidden-b", dir_fd=dfd)
    finally:
        os.close(dfd)
    ev = _find(mon, _of(("mkdirat",), **{"fd.nameraw": ".hidden-b"}))
    assert (ev["fd.name"], ev["evt.arg.dirfd"]) == (str(real / ".hidden-b"), dfd)
    os.mkdir(tmp_path / "via" / ".hidden-c")
    ev = _find(mon, _of(("mkdir", "mkdirat"), **{"fd.nameraw": str(tmp_path / "via" / ".hidden-c")}))
    assert ev["fd.name"] == str(real / ".hidden-c")


def _xattr_args(value: bytes) -> bytes:
    buf = ctypes.create_string_buffer(value)
    _KEEP.append(buf)
    return struct.pack("<QII", ctypes.addressof(buf), len(value), 0)


_KEEP: list[Any] = []


def test_xattrs_file_capabilities(mon: RunningMonitor, tmp_path: Path) -> None:
    prog = tmp_path / "prog"
    shutil.copy("/bin/true", prog)
    subprocess.run(["setcap", "cap_net_raw+ep", str(prog)], check=True)
    ev = _find(mon, lambda e: e["evt.type"] in ("setxattr", "lsetxattr", "fsetxattr")
               and e["proc.name"] == "setcap" and e.get("evt.arg.name") == "security.capability")
    assert ev["fd.name"] == str(prog) and ev["evt.rawres"] == 0 and ev["evt.arg.size"] > 0
    link = tmp_path / "prog-link"
    link.symlink_to(prog)
    os.setxattr(link, "user.rw", b"1")
    ev = _find(mon, _of(("setxattr",), **{"evt.arg.name": "user.rw"}))
    assert (ev["fd.name"], ev["evt.arg.size"]) == (str(prog), 1)
    fd = os.open(link, os.O_RDONLY)
    try:
        os.setxattr(fd, "user.fd", b"22")
        ev = _find(mon, _of(("fsetxattr",), **{"evt.arg.name": "user.fd"}))
        assert (ev["fd.name"], ev["fd.is_resolved"], ev["evt.arg.fd"]) == (str(prog), True, fd)
        os.removexattr(fd, "user.fd")
        ev = _find(mon, _of(("fremovexattr",), **{"evt.arg.name": "user.fd"}))
        assert ev["fd.name"] == str(prog)
    finally:
        os.close(fd)
    os.removexattr(link, "user.rw")
    ev = _find(mon, _of(("removexattr",), **{"evt.arg.name": "user.rw"}))
    assert ev["fd.name"] == str(prog)
    with pytest.raises(OSError):
        os.setxattr(link, "user.x", b"1", follow_symlinks=False)  # no user xattrs on links
    ev = _find(mon, _of(("lsetxattr",), **{"evt.arg.name": "user.x"}))
    assert ev["fd.name"] == str(link) and ev["evt.failed"] is True
    # setxattrat/removexattrat (6.13+): the same with a dirfd.
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        args = _xattr_args(b"abc")
        assert _sys(463, dfd, b"prog", 0, b"user.at", args, len(args)) == 0
        ev = _find(mon, _of(("setxattrat",), **{"evt.arg.name": "user.at"}))
        assert (ev["fd.name"], ev["evt.arg.dirfd"]) == (str(prog), dfd)
        assert _sys(466, dfd, b"prog", 0, b"user.at") == 0
        ev = _find(mon, _of(("removexattrat",), **{"evt.arg.name": "user.at"}))
        assert ev["fd.name"] == str(prog)
    finally:
        os.close(dfd)
    assert os.getxattr(prog, "security.capability")


def test_utimensat_times_given_path_and_fd(mon: RunningMonitor, tmp_path: Path) -> None:
    f = tmp_path / "stamp"
    f.write_text("")
    link = tmp_path / "stamp-link"
    link.symlink_to(f)
    past = 978307200_123456789  # 2001-01-01
    os.utime(link, ns=(past, past + 1))
    ev = _find(mon, _of(("utimensat",), **{"evt.arg.mtime": past + 1}))
    assert (ev["fd.name"], ev["evt.arg.atime"], ev["fd.nameraw"]) == (str(f), past, str(link))
    with open(link) as fh:
        os.utime(fh.fileno(), ns=(past + 2, past + 3))  # futimens: utimensat(fd, NULL, ...)
        ev = _find(mon, _of(("utimensat",), **{"evt.arg.mtime": past + 3}))
    assert (ev["fd.name"], ev["fd.is_resolved"]) == (str(f), True)
    os.utime(f)  # no times: now
    ev = _find(mon, _of(("utimensat",), **{"fd.name": str(f), "evt.arg.mtime": -1}))
    assert ev["evt.arg.atime"] == -1
    assert f.stat().st_mtime_ns != past + 3


# --- namespaces -----------------------------------------------------------------------------


def test_setns_type_from_the_nsfs_inode_and_unshare(mon: RunningMonitor) -> None:
    def enter() -> int:
        fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
        return 0 if _sys(308, fd, 0) == 0 else 1  # nstype 0: "any", the fd decides

    child = _child(enter)
    ev = _find(mon, _of(("setns",), child))
    assert (ev["evt.arg.ns"], ev["evt.arg.nstype"], ev["evt.rawres"]) == ("uts", "CLONE_NEWUTS", 0)

    def unshare() -> int:
        return 0 if _sys(272, 0x04000000 | 0x00020000) == 0 else 1  # CLONE_NEWUTS|CLONE_NEWNS

    child = _child(unshare)
    ev = _find(mon, _of(("unshare",), child))
    assert set(ev["evt.arg.flags"].split("|")) == {"CLONE_NEWUTS", "CLONE_NEWNS"}


# --- sockets --------------------------------------------------------------------------------


def test_bind_listen_accept_from_the_kernel_sock(mon: RunningMonitor) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))  # port 0: only the kernel knows which port it got
    port = srv.getsockname()[1]
    srv.listen(7)
    cli = socket.create_connection(("127.0.0.1", port))
    conn, peer = srv.accept()
    try:
        ev = _find(mon, _of(("bind",), **{"evt.arg.fd": srv.fileno(), "fd.lport": port}))
        assert (ev["fd.lip"], ev["fd.lport"], ev["fd.name"]) == ("127.0.0.1", port, f"127.0.0.1:{port}")
        ev = _find(mon, _of(("listen",), **{"evt.arg.fd": srv.fileno(), "fd.lport": port}))
        assert (ev["fd.lport"], ev["fd.sport"], ev["evt.arg.backlog"]) == (port, port, 7)
        ev = _find(mon, _of(("accept", "accept4"), **{"fd.num": conn.fileno()}))
        assert (ev["fd.cip"], ev["fd.cport"]) == peer == cli.getsockname()
        assert (ev["fd.sip"], ev["fd.sport"]) == ("127.0.0.1", port)
        assert ev["fd.name"] == f"127.0.0.1:{peer[1]}->127.0.0.1:{port}"
    finally:
        conn.close()
        cli.close()
        srv.close()


def test_udp_sends_only(mon: RunningMonitor) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    tcp_srv = socket.create_server(("127.0.0.1", 0))
    tcp = socket.create_connection(tcp_srv.getsockname())
    tcp.send(b"tcp is not recorded")  # sendto(fd, ..., NULL, 0) on TCP
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.sendto(b"hello", ("127.0.0.1", port))
    ev = _find(mon, _of(("sendto",), **{"evt.arg.fd": tx.fileno(), "fd.rport": port}))
    assert (ev["fd.rip"], ev["fd.rport"], ev["evt.arg.size"], ev["evt.rawres"]) == ("127.0.0.1", port, 5, 5)
    assert ev["fd.lport"] == tx.getsockname()[1]
    conn = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx6.bind(("::1", 0))
    conn.connect(rx6.getsockname()[:2])
    conn.sendmsg([b"x"])  # no name: the connected peer, from the sock
    ev = _find(mon, _of(("sendmsg",), **{"evt.arg.fd": conn.fileno(), "fd.rport": rx6.getsockname()[1]}))
    assert (ev["fd.rip"], ev["fd.type"]) == ("::1", "ipv6")
    _none(mon, _of(("sendto", "sendmsg"), **{"evt.arg.fd": tcp.fileno()}))
    for s in (rx, tcp_srv, tcp, tx, conn, rx6):
        s.close()


# --- memory and processes -------------------------------------------------------------------


def test_userfaultfd_and_process_vm_writev(mon: RunningMonitor) -> None:
    fd = _sys(323, 0o2000000 | 1)  # O_CLOEXEC|UFFD_USER_MODE_ONLY
    assert fd >= 0, fd
    os.close(fd)
    ev = _find(mon, _of(("userfaultfd",)))
    assert (ev["fd.num"], ev["evt.arg.flags"]) == (fd, "O_CLOEXEC|UFFD_USER_MODE_ONLY")

    buf = ctypes.create_string_buffer(b"before", 16)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # waits, then reports what its copy of buf holds
        os.read(r, 1)
        os._exit(0 if buf.value == b"INJECTED" else 1)
    try:
        class Iov(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        src = ctypes.create_string_buffer(b"INJECTED")
        local, remote = Iov(ctypes.addressof(src), 9), Iov(ctypes.addressof(buf), 9)
        ret = _sys(311, child, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        assert ret == 9, ret
    finally:
        os.write(w, b"x")
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the write did not land"
    ev = _find(mon, _of(("process_vm_writev",), **{"evt.arg.pid": child}))
    assert ev["evt.rawres"] == 9


def test_proc_pid_mem_opens_resolved(mon: RunningMonitor) -> None:
    with open("/proc/self/mem", "rb") as fh:
        fd = fh.fileno()
        ev = _find(mon, _of(("openat", "open"), **{"fd.num": fd, "fd.nameraw": "/proc/self/mem"}))
    assert (ev["fd.name"], ev["fd.is_proc_mem"], ev["fd.proc_mem_pid"]) == (
        f"/proc/{os.getpid()}/mem", True, os.getpid())
    target = subprocess.Popen(["sleep", "30"])
    old = os.getcwd()
    try:
        os.chdir(f"/proc/{target.pid}")
        os.close(os.open("mem", os.O_RDONLY))  # relative
    finally:
        os.chdir(old)
        target.kill()
        target.wait()
    ev = _find(mon, _of(("openat", "open"), **{"fd.nameraw": "mem"}))
    assert (ev["fd.is_proc_mem"], ev["fd.proc_mem_pid"]) == (True, target.pid)
    with open("/proc/self/maps", "rb"):
        pass
    ev = _find(mon, _of(("openat", "open"), **{"fd.nameraw": "/proc/self/maps"}))
    assert (ev["fd.is_proc_mem"], ev["fd.proc_mem_pid"]) == (False, -1)


def test_kill_across_users_only(mon: RunningMonitor) -> None:
    mine = subprocess.Popen(["sleep", "30"])  # root's
    theirs = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                               "sleep", "30"])
    time.sleep(0.3)  # setpriv has exec'd sleep as nobody
    try:
        os.kill(mine.pid, signal.SIGCONT)  # same user: the kernel drops it

        def as_nobody() -> int:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                os.kill(mine.pid, signal.SIGTERM)
            except PermissionError:
                return 0
            return 1

        child = _child(as_nobody)
        os.kill(theirs.pid, signal.SIGUSR2)  # root signals nobody's process: delivered, crosses users
        assert _sys(234, theirs.pid, theirs.pid, signal.SIGCONT) == 0  # tgkill
        # Read while the target lives: a refused kill's target uid comes from /proc.
        ev = _find(mon, _of(("kill",), child))
        assert (ev["evt.arg.pid"], ev["evt.arg.sig"], ev["evt.errno"]) == (mine.pid, "SIGTERM", "EPERM")
        assert (ev["evt.target.uid"], ev["evt.target.uid_source"], ev["user.uid"]) == (0, "procfs", NOBODY)
    finally:
        for p in (mine, theirs):
            p.kill()
            p.wait()
    ev = _find(mon, _of(("kill",), **{"evt.arg.pid": theirs.pid, "evt.arg.sig": "SIGUSR2"}))
    assert (ev["evt.target.pid"], ev["evt.target.uid"], ev["evt.target.uid_source"]) == (
        theirs.pid, NOBODY, "kernel")
    ev = _find(mon, _of(("tgkill",), **{"evt.arg.tid": theirs.pid}))
    assert (ev["evt.target.uid"], ev["evt.arg.sig"]) == (NOBODY, "SIGCONT")
    _none(mon, _of(("kill",), **{"evt.arg.pid": mine.pid, "evt.arg.sig": "SIGCONT"}))


# --- renames and links judged by where they really are ----------------------------------------


def test_rename_and_link_resolve_relative_sources_and_linked_directories(
        mon: RunningMonitor, tmp_path: Path) -> None:
    src_dir, dst_dir = tmp_path / "src", tmp_path / "dst"
    src_dir.mkdir()
    dst_dir.mkdir()
    (tmp_path / "dst-alias").symlink_to(dst_dir)
    (src_dir / "a").write_text("a")
    sfd = os.open(src_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # renameat(srcfd, "a", AT_FDCWD, /tmp/.../dst-alias/b): a relative source on its
        # own dirfd, a destination through a linked directory.
        os.rename("a", tmp_path / "dst-alias" / "b", src_dir_fd=sfd)
    finally:
        os.close(sfd)
    given = str(tmp_path / "dst-alias" / "b")
    ev = _find(mon, _of(("rename", "renameat", "renameat2"), **{"fd.nameraw": given}))
    assert (ev["evt.arg.oldpath"], ev["fd.name"], ev["evt.arg.newpath"]) == (
        str(src_dir / "a"), str(dst_dir / "b"), str(dst_dir / "b"))
    old = os.getcwd()
    os.chdir(dst_dir)
    try:
        os.link("b", tmp_path / "dst-alias" / "c")
    finally:
        os.chdir(old)
    ev = _find(mon, _of(("link", "linkat"), **{"fd.name": str(dst_dir / "c")}))
    assert ev["evt.arg.oldpath"] == str(dst_dir / "b")
