"""Syscall records on the real kernel: each decoded argument matches what the test did."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from monitor.events.writers import TRACKED_DIRS
from tests.monitor_proc import RunningMonitor

pytestmark = pytest.mark.kernel
Event = dict[str, Any]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMonitor]:
    assert os.geteuid() == 0, "kernel tests need root"
    work = tmp_path_factory.mktemp("syscalls")
    pin = Path(f"/sys/fs/bpf/ringwatch-test-{uuid.uuid4().hex[:8]}")
    cfg = {
        "sensor": {"extra_event_types": ["all"]},
        "lineage": {"bpffs_dir": str(pin)},
        "control": {"socket": str(work / "control.sock")},
    }
    with RunningMonitor(work, cfg) as m:
        yield m
        assert m.stop() == 0
    shutil.rmtree(pin, ignore_errors=True)


def _find(mon: RunningMonitor, pred: Callable[[Event], bool], timeout: float = 45) -> Event:
    return mon.wait_for(pred, timeout=timeout)


def _mine(evt_types: tuple[str, ...], pid: int | None = None) -> Callable[[Event], bool]:
    me = os.getpid() if pid is None else pid
    return lambda e: e["evt.type"] in evt_types and e["proc.pid"] == me


def test_open_flags_mode_and_fd(mon: RunningMonitor, tmp_path: Path) -> None:
    target = tmp_path / f"out-{uuid.uuid4().hex[:6]}.txt"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    os.close(fd)
    ev = _find(mon, lambda e: _mine(("openat", "open"))(e) and e.get("fd.name") == str(target))
    assert ev["evt.arg.flags"].split("|")[:1] == ["O_WRONLY"]
    assert {"O_CREAT", "O_TRUNC"} <= set(ev["evt.arg.flags"].split("|"))
    assert ev["evt.arg.mode"] == 0o640
    assert ev["fd.num"] == fd
    assert ev["evt.is_open_write"] is True and ev["evt.is_open_read"] is False
    assert (ev["fd.directory"], ev["fd.filename"]) == (str(tmp_path), target.name)
    assert ev["proc.ppid"] == os.getppid()

    missing = tmp_path / "missing" / "x"
    with pytest.raises(FileNotFoundError):
        os.open(missing, os.O_RDONLY)
    ev = _find(mon, lambda e: _mine(("openat", "open"))(e) and e.get("fd.name") == str(missing))
    assert (ev["evt.res"], ev["evt.rawres"], ev["evt.errno"], ev["fd.num"]) == ("ENOENT", -2, "ENOENT", -1)
    assert ev["evt.is_open_read"] is True


def test_relative_paths_are_joined_with_cwd_and_dirfd(mon: RunningMonitor, tmp_path: Path) -> None:
    name = f"rel-{uuid.uuid4().hex[:6]}"
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o600))
    finally:
        os.chdir(old)
    ev = _find(mon, lambda e: _mine(("openat", "open"))(e) and e.get("fd.nameraw") == name)
    assert ev["fd.relative"] is True
    assert ev["fd.name"] == str(tmp_path / name)

    sub = tmp_path / "sub"
    sub.mkdir()
    dfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(os.open(f"../{name}", os.O_RDONLY, dir_fd=dfd))
        ev = _find(mon, lambda e: _mine(("openat",))(e) and e.get("fd.nameraw") == f"../{name}")
        assert ev["evt.arg.dirfd"] == dfd
        assert ev["fd.name"] == str(tmp_path / name)  # normalised: no "sub/.."
    finally:
        os.close(dfd)


def test_connect_ipv4_ipv6_unix(mon: RunningMonitor, tmp_path: Path) -> None:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as srv, socket.socket(family) as cli:
            srv.bind((host, 0))
            srv.listen()
            port = srv.getsockname()[1]
            cli.connect((host, port))
            ev = _find(mon, lambda e, p=port: _mine(("connect",))(e) and e.get("fd.rport") == p)
            assert ev["fd.rip"] == host and ev["evt.rawres"] == 0
            assert (ev["fd.sip"], ev["fd.sport"]) == (host, port)
            assert ev["fd.type"] == ("ipv4" if family == socket.AF_INET else "ipv6")
            assert ev["fd.name"] == (f"{host}:{port}" if family == socket.AF_INET else f"[{host}]:{port}")
    path = str(tmp_path / "u.sock")
    with socket.socket(socket.AF_UNIX) as srv, socket.socket(socket.AF_UNIX) as cli:
        srv.bind(path)
        srv.listen()
        cli.connect(path)
    ev = _find(mon, lambda e: _mine(("connect",))(e) and e.get("fd.name") == path)
    assert ev["fd.type"] == "unix" and ev["fd.sockfamily"] == "AF_UNIX"


def test_packet_socket(mon: RunningMonitor) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    fd = s.fileno()
    s.close()
    ev = _find(mon, lambda e: _mine(("socket",))(e) and e.get("fd.num") == fd
               and e.get("evt.arg.domain") == "AF_PACKET")
    assert ev["evt.arg.sotype"] == "SOCK_RAW"


def test_ptrace_attach_and_set_uid(mon: RunningMonitor) -> None:
    target = subprocess.Popen(["/bin/sleep", "30"])
    try:
        assert libc.ptrace(16, target.pid, None, None) == 0  # PTRACE_ATTACH
        os.waitpid(target.pid, 0)
        libc.ptrace(17, target.pid, None, None)  # PTRACE_DETACH
    finally:
        target.kill()
        target.wait()
    ev = _find(mon, lambda e: _mine(("ptrace",))(e) and e.get("evt.arg.pid") == target.pid)
    assert ev["evt.arg.request"] == "PTRACE_ATTACH" and ev["evt.rawres"] == 0

    child = os.fork()
    if child == 0:
        os.setgid(65534)
        os.setuid(65534)
        os._exit(0)
    os.waitpid(child, 0)
    ev = _find(mon, _mine(("setuid",), child))
    assert ev["evt.arg.uid"] == 65534
    assert ev["user.uid"] == 65534  # the record is taken after the call: the new identity
    ev = _find(mon, _mine(("setgid",), child))
    assert ev["evt.arg.gid"] == 65534


def test_file_operations_with_two_paths(mon: RunningMonitor, tmp_path: Path) -> None:
    a, b, c, d = (tmp_path / n for n in ("a", "b", "c", "d"))
    a.write_text("x")
    os.rename(a, b)
    os.link(b, c)
    os.symlink("/etc/shadow", d)
    os.chmod(b, 0o600)
    os.unlink(c)
    ev = _find(mon, lambda e: _mine(("rename", "renameat", "renameat2"))(e) and e.get("fd.name") == str(b))
    assert ev["evt.arg.oldpath"] == str(a)
    ev = _find(mon, lambda e: _mine(("link", "linkat"))(e) and e.get("fd.name") == str(c))
    assert ev["evt.arg.oldpath"] == str(b)
    ev = _find(mon, lambda e: _mine(("symlink", "symlinkat"))(e) and e.get("fd.name") == str(d))
    assert ev["evt.arg.target"] == "/etc/shadow" and ev["evt.arg.linkpath"] == str(d)
    ev = _find(mon, lambda e: _mine(("chmod", "fchmodat"))(e) and e.get("fd.name") == str(b))
    assert ev["evt.arg.mode"] == 0o600
    ev = _find(mon, lambda e: _mine(("unlink", "unlinkat"))(e) and e.get("fd.name") == str(c))
    assert ev["evt.rawres"] == 0


def test_mount_memfd_modules_bpf(mon: RunningMonitor, tmp_path: Path) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "rwtest", str(point)], check=True)
    subprocess.run(["umount", str(point)], check=True)
    ev = _find(mon, lambda e: e["evt.type"] == "mount" and e.get("fd.name") == str(point))
    assert (ev["evt.arg.fstype"], ev["evt.arg.source"], ev["proc.name"]) == ("tmpfs", "rwtest", "mount")

    name = f"rw-{uuid.uuid4().hex[:6]}"
    mfd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.close(mfd)
    ev = _find(mon, lambda e: _mine(("memfd_create",))(e) and e.get("evt.arg.name") == name)
    assert ev["evt.arg.flags"] == "MFD_CLOEXEC" and ev["fd.name"] == f"memfd:{name}"

    with open("/dev/null", "rb") as fh:
        assert libc.syscall(313, fh.fileno(), b"", 0) < 0  # finit_module: not a module
        ev = _find(mon, _mine(("finit_module",)))
        assert ev["evt.arg.fd"] == fh.fileno() and ev["fd.name"] == "/dev/null"
    assert libc.syscall(175, b"\0" * 16, 16, b"") < 0  # init_module: garbage image
    ev = _find(mon, _mine(("init_module",)))
    assert ev["evt.failed"] is True

    subprocess.run(["bpftool", "prog", "list"], check=True, capture_output=True)
    ev = _find(mon, lambda e: e["evt.type"] == "bpf" and e["proc.name"] == "bpftool")
    assert ev["evt.arg.cmd"].startswith("BPF_")


DUP = r"""
import os, socket, sys
port, target = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
f = open("/dev/null", "rb")
os.dup2(f.fileno(), 1)          # a file onto stdout: not recorded
os.dup2(s.fileno(), 7)          # a socket onto fd 7: not recorded
os.dup2(s.fileno(), target)     # a socket onto stdio: recorded
"""


def test_socket_dup_onto_stdio_only(mon: RunningMonitor) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        child = subprocess.Popen([sys.executable, "-c", DUP, str(port), "0"])
        conn, _ = srv.accept()
        child.wait()
        conn.close()
    ev = _find(mon, _mine(("dup2", "dup3"), child.pid))
    assert (ev["evt.arg.oldfd"] > 2, ev["evt.arg.newfd"]) == (True, 0)
    assert (ev["fd.type"], ev["fd.rip"], ev["fd.rport"]) == ("ipv4", "127.0.0.1", port)
    time.sleep(0.5)
    dups = [e for e in mon.events() if e["proc.pid"] == child.pid and e["evt.type"] in ("dup2", "dup3")]
    assert len(dups) == 1, dups


def test_rules_decide_what_the_kernel_records(tmp_path: Path) -> None:
    """With a ruleset that needs only execve, an openat storm makes no records at all."""
    rules = tmp_path / "exec-only.yaml"
    rules.write_text(
        "- rule: exec only\n  desc: d\n  condition: evt.type == \"execve\"\n"
        "  output: x %proc.name\n  priority: DEBUG\n"
    )
    pin = Path(f"/sys/fs/bpf/ringwatch-test-{uuid.uuid4().hex[:8]}")
    storm = [sys.executable, "-c", "import os\nfor _ in range(20000): os.close(os.open('/etc/hostname', 0))"]
    produced = {}
    try:
        for label, extra in (("exec-only", []), ("with-openat", ["openat"])):
            cfg = {"sensor": {"extra_event_types": extra}, "lineage": {"bpffs_dir": str(pin)},
                   "control": {"socket": str(tmp_path / f"{label}.sock")}}
            mon = RunningMonitor(tmp_path / label, cfg, args=["--no-default-rules", "--rules", str(rules)])
            with mon:
                filt = mon.wait_log("syscall_filter")
                subprocess.run(storm, check=True)
                time.sleep(0.5)
                assert mon.stop(signal.SIGTERM) == 0
                produced[label] = mon.wait_log("stopped")["produced"]["syscall"]
                assert filt["syscalls"] == extra
    finally:
        shutil.rmtree(pin, ignore_errors=True)
    assert produced["exec-only"] == 0
    assert produced["with-openat"] >= 20000


@contextmanager
def _monitor_with_rules(tmp_path: Path, rules_text: str) -> Iterator[RunningMonitor]:
    """A monitor (not started) with only these rules, a pin dir and socket of its own."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_text)
    pin = Path(f"/sys/fs/bpf/ringwatch-test-{uuid.uuid4().hex[:8]}")
    cfg = {"lineage": {"bpffs_dir": str(pin)}, "control": {"socket": str(tmp_path / "c.sock")}}
    try:
        yield RunningMonitor(tmp_path / "mon", cfg, args=["--no-default-rules", "--rules", str(rules)])
    finally:
        shutil.rmtree(pin, ignore_errors=True)


OPEN_RULES = """\
- rule: etc reads
  desc: d
  condition: evt.type in ["open", "openat", "openat2"] and fd.name startswith "/etc/"
  output: "read %fd.name"
  priority: INFO
"""


def test_kernel_path_filter_keeps_only_what_rules_can_match(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex[:8]
    outside = tmp_path / f"outside-{mark}"
    outside.write_text("x")
    with _monitor_with_rules(tmp_path, OPEN_RULES) as mon:
        with mon:
            assert mon.wait_log("open_path_filter")["prefixes"] == ["/etc/"]
            spellings = {
                "kept": "/etc/hostname",
                "double-slash": "//etc/hostname",           # normalises into /etc/
                "dot-segment": f"/./{str(outside)[1:]}",  # cannot be judged from its text
                "traversal": "/tmp/../etc/hostname",
            }
            for path in spellings.values():
                os.close(os.open(path, os.O_RDONLY))
            os.close(os.open(outside, os.O_RDONLY))  # canonical, outside /etc/: dropped in the kernel
            old = os.getcwd()
            os.chdir("/etc")
            try:
                os.close(os.open("hostname", os.O_RDONLY))  # relative: always passed
            finally:
                os.chdir(old)
            for path in spellings.values():
                _find(mon, lambda e, p=path: _mine(("openat", "open"))(e) and e.get("fd.nameraw") == p)
            _find(mon, lambda e: _mine(("openat",))(e) and e.get("fd.nameraw") == "hostname")
            assert mon.stop() == 0
            stopped = mon.wait_log("stopped")
        mine = [e for e in mon.events() if e["proc.pid"] == os.getpid() and e["evt.type"] == "openat"]
        assert not [e for e in mine if e.get("fd.nameraw") == str(outside)]
        assert stopped["filtered_opens"] > 0
        # The alerts see /etc/hostname through every spelling that reaches /etc/.
        alerts = [json.loads(line) for line in mon.stdout_path.read_text().splitlines()]
        # .get: the drop alert (records lost on a loaded machine) is about no process.
        alerted = {a["event"]["fd.nameraw"] for a in alerts if a["event"].get("proc.pid") == os.getpid()}
        assert {"/etc/hostname", "//etc/hostname", "/tmp/../etc/hostname", "hostname"} <= alerted


WRITER_RULES = """\
- rule: dropped
  desc: d
  condition: evt.type == "execve" and proc.exe_writer_exepath != null
  output: "ran %proc.exepath written by %proc.exe_writer_name"
  priority: INFO
- rule: dotted
  desc: d
  condition: evt.type == "openat" and "/.rwsecret/" in fd.name
  output: "read %fd.name"
  priority: INFO
"""


def test_writes_only_prefixes_and_dotted_resolved_paths(tmp_path: Path) -> None:
    """A rule on an executable's writer makes the kernel keep writes (not reads) below the
    tracked dirs; a rule on a dotted path needs no prefix, and a canonical path that resolves
    to a dotted one (a symlink) is kept too."""
    assert str(tmp_path).startswith("/tmp/")
    existing = tmp_path / "existing"
    existing.write_text("x")
    secret = tmp_path / ".rwsecret" / "f"
    secret.parent.mkdir()
    secret.write_text("s")
    link = tmp_path / "plain-link"
    link.symlink_to(secret)
    payload = tmp_path / "payload"
    with _monitor_with_rules(tmp_path, WRITER_RULES) as mon:
        with mon:
            logged = mon.wait_log("open_path_filter")
            assert logged["prefixes"] == [] and logged["write_prefixes"] == sorted(TRACKED_DIRS)
            os.close(os.open(existing, os.O_RDONLY))  # a read below /tmp/: dropped
            os.close(os.open(link, os.O_RDONLY))  # resolves to the dotted secret: kept
            shutil.copy("/bin/true", payload)  # a write below /tmp/: kept
            payload.chmod(0o755)
            # The exec travels on the process lane, drained before the syscall lane: run it
            # once the write is through (README, drop and execute: the race this avoids).
            _find(mon, lambda e: _mine(("openat",))(e) and e.get("fd.name") == str(payload))
            subprocess.run([str(payload)], check=True)
            _find(mon, lambda e: _mine(("openat",))(e) and e.get("fd.nameraw") == str(link))
            ran = _find(mon, lambda e: e["evt.type"] == "execve" and e.get("proc.exepath") == str(payload))
            assert ran["proc.exe_writer_pid"] == os.getpid()
            assert ran["proc.exe_writer_exepath"] == os.path.realpath(sys.executable)
            assert mon.stop() == 0
        mine = [e for e in mon.events() if e["proc.pid"] == os.getpid() and e["evt.type"] == "openat"]
        assert not [e for e in mine if e.get("fd.name") == str(existing)]
        by_link = [e for e in mine if e.get("fd.nameraw") == str(link)]
        assert by_link[0]["fd.name"] == str(secret)
        alerts = [json.loads(line) for line in mon.stdout_path.read_text().splitlines()]
        assert {a["rule"] for a in alerts if a["event"].get("proc.pid") in (os.getpid(), ran["proc.pid"])} \
            >= {"dropped", "dotted"}


BPF_RULES = """\
- rule: program loads
  desc: d
  condition: evt.type == "bpf" and evt.arg.cmd == "BPF_PROG_LOAD"
  output: "load by %proc.name"
  priority: INFO
"""


def test_kernel_keeps_only_the_bpf_commands_rules_name(tmp_path: Path) -> None:
    with _monitor_with_rules(tmp_path, BPF_RULES) as mon:
        with mon:
            assert mon.wait_log("bpf_command_filter")["commands"] == ["BPF_PROG_LOAD"]
            lister = subprocess.run(["bpftool", "prog", "list"], check=True, capture_output=True)
            del lister
            attr = (ctypes.c_uint8 * 128)()  # an empty BPF_PROG_LOAD: rejected, but made
            assert libc.syscall(321, 5, ctypes.byref(attr), 128) < 0
            ev = _find(mon, lambda e: _mine(("bpf",))(e) and e.get("evt.arg.cmd") == "BPF_PROG_LOAD")
            assert ev["evt.failed"] is True
            assert mon.stop() == 0
        cmds = {e.get("evt.arg.cmd") for e in mon.events() if e["evt.type"] == "bpf"}
        # bpftool's id walks and info reads never left the kernel.
        assert cmds == {"BPF_PROG_LOAD"}
