"""The cgroups fork and exec records name, and the container identity of a process gone
before its lookup, on the real kernel (a hybrid host).

The monitor is stopped (SIGSTOP) while a process execs, exits and is reaped, so that when
its exec record is decoded /proc/PID is gone: its identity can then come only from the
cgroups the kernel recorded (cgroup.id on every record, cgroup.v1_id at exec). Docker's
cgroupfs driver on a hybrid host is reproduced by hand: a v1 cgroup /docker/<id> in the
chosen controller's hierarchy while the v2 cgroup stays the one host processes have.
Before exec records named the v1 cgroup, both gone processes here were "" (unknown).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel_util import own_cgroup2
from tests.monitor_proc import RunningMonitor
from tests.scoped_monitor import scoped_monitor

pytestmark = pytest.mark.kernel

ID = "5e1f0c3a9b7d4e2f8a6c1b3d5f7e9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f"
TRUE = "/usr/bin/true"
Event = dict[str, Any]


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMonitor]:
    with scoped_monitor(tmp_path_factory.mktemp("gone"), "gone", RunningMonitor) as m:
        yield m


@pytest.fixture(scope="module")
def hierarchy(mon: RunningMonitor) -> tuple[str, Path]:
    """The controller exec records name a v1 cgroup of, and where its hierarchy is mounted."""
    controller = mon.wait_log("sensor_attached").get("cgroup1_controller")
    if not controller:
        pytest.skip("no cgroup v1 controller is mounted: a pure v2 host, where the v2 id tells")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _source, options = post.split(" ", 2)
        if fstype == "cgroup" and controller in options.split(","):
            return controller, Path(pre.split()[4])
    raise AssertionError(f"{controller} is bound to a v1 hierarchy but not mounted")


@contextlib.contextmanager
def v1_cgroup(root: Path, relative: str) -> Iterator[Path]:
    path = root / relative
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        for d in _up_to(root, path):
            rmdir_soon(d)


def rmdir_soon(cgroup: Path) -> None:
    """Remove a cgroup directory, retried for 5 s: an exited task leaves its cgroup a
    moment after it is reaped."""
    for _ in range(50):
        try:
            cgroup.rmdir()
            return
        except OSError:
            time.sleep(0.1)


def _up_to(root: Path, path: Path) -> list[Path]:
    """path and its parents below root, deepest first."""
    out, d = [], path
    while d != root:
        out.append(d)
        d = d.parent
    return out


def run(argv: list[str]) -> int:
    p = start(argv)
    p.wait(timeout=30)
    assert p.returncode == 0
    return p.pid


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    quiet = subprocess.DEVNULL
    return subprocess.Popen(argv, stdin=quiet, stdout=quiet, stderr=quiet)


def in_cgroup(cg: Path, program: str, *args: str) -> list[str]:
    """A shell that joins cg (its cgroup.procs) and execs the program: the exec runs there."""
    return ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec {program} "$@"', "sh", *args]


def exec_event(mon: RunningMonitor, pid: int, exepath: str) -> Event:
    return mon.wait_for(lambda e: e.get("proc.pid") == pid and e["evt.type"] in ("execve", "execveat")
                        and e.get("evt.rawres") == 0 and e.get("proc.exepath") == exepath, timeout=30)


@contextlib.contextmanager
def stopped(mon: RunningMonitor) -> Iterator[None]:
    """The monitor stopped, every thread of it: records wait in the ring buffers meanwhile."""
    assert mon.proc is not None
    pid = mon.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while True:
            states = {(Path(t) / "stat").read_text().rsplit(")", 1)[1].split()[0]
                      for t in Path(f"/proc/{pid}/task").iterdir()}
            if states == {"T"}:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.01)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_the_exec_record_names_the_v1_cgroup_the_process_ran_in(
        mon: RunningMonitor, hierarchy: tuple[str, Path]) -> None:
    """cgroup.v1_id is the inode number of the cgroup's directory: where the process was at exec."""
    controller, root = hierarchy
    own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if controller in line.split(":", 2)[1].split(","))
    own_ino = (root / own.lstrip("/")).stat().st_ino
    here = run([TRUE])
    with v1_cgroup(root, f"ringwatch-test-v1-{os.getpid()}") as cg:
        moved = run(in_cgroup(cg, TRUE))
        assert exec_event(mon, moved, TRUE)["cgroup.v1_id"] == cg.stat().st_ino != own_ino
    assert exec_event(mon, here, TRUE)["cgroup.v1_id"] == own_ino


def test_gone_processes_keep_their_identity_host_and_container_alike(
        mon: RunningMonitor, hierarchy: tuple[str, Path]) -> None:
    """A host process and a container process of the same v2 cgroup, both gone before their
    lookup: the host one is the host, the container one its container, never the host."""
    _controller, root = hierarchy
    with v1_cgroup(root, f"docker/{ID}") as cg:
        # Live ones first (read from /proc), then gone ones (named from their cgroups' ids).
        host_live, box_live = start(["sleep", "3"]), start(in_cgroup(cg, "/bin/sleep", "3"))
        try:
            assert exec_event(mon, host_live.pid, "/usr/bin/sleep")["container.id"] == "host"
            assert exec_event(mon, box_live.pid, "/usr/bin/sleep")["container.id"] == ID[:12]
        finally:
            for p in (host_live, box_live):
                p.kill()
                p.wait()
        with stopped(mon):
            host_gone = run([TRUE])
            box_gone = run(in_cgroup(cg, TRUE))
            for pid in (host_gone, box_gone):
                assert not Path(f"/proc/{pid}").exists()
        host_ev, box_ev = exec_event(mon, host_gone, TRUE), exec_event(mon, box_gone, TRUE)
    assert host_ev["cgroup.id"] == box_ev["cgroup.id"]  # one v2 cgroup: it cannot tell them apart
    assert host_ev["container.id"] == "host"
    assert (box_ev["container.id"], box_ev["container.full_id"], box_ev["container.type"]) == (
        ID[:12], ID, "docker")


def test_a_gone_process_of_a_cgroup_never_seen_is_named_from_cgroupfs(
        mon: RunningMonitor, hierarchy: tuple[str, Path]) -> None:
    """No live process of its cgroups was ever looked up: the recorded ids are found in the
    mounted hierarchies. Its container's cgroup removed before the lookup: unknown, never host."""
    _controller, root = hierarchy
    fresh, removed = "7" * 64, "9" * 64
    with v1_cgroup(root, f"docker/{fresh}") as cg:
        with stopped(mon):
            kept = run(in_cgroup(cg, TRUE))
            with v1_cgroup(root, f"docker/{removed}") as short:
                gone_with_it = run(in_cgroup(short, TRUE))
        assert exec_event(mon, kept, TRUE)["container.full_id"] == fresh
    ev = exec_event(mon, gone_with_it, TRUE)
    assert ev["container.id"] == "" and "container.full_id" not in ev


FORK_AND_OPEN = """
import os
pid = os.fork()
if pid == 0:
    open("/etc/passwd").close()
    os._exit(0)
os.waitpid(pid, 0)
print(pid)
"""


def test_a_forked_child_that_never_execs_has_the_cgroups_of_its_fork(
        mon: RunningMonitor, hierarchy: tuple[str, Path]) -> None:
    """A child with no exec of its own, gone before its open was decoded: the fork record's
    v1 cgroup (the child's, kept by lineage) names its container."""
    _controller, root = hierarchy
    box = "3" * 64
    with v1_cgroup(root, f"docker/{box}") as cg:
        with stopped(mon):
            out = subprocess.run(in_cgroup(cg, "/usr/bin/python3", "-c", FORK_AND_OPEN), check=True,
                                 capture_output=True, text=True, timeout=60).stdout
        child = int(out)
        ev = mon.wait_for(lambda e: e.get("proc.pid") == child and e.get("fd.name") == "/etc/passwd",
                          timeout=30)
        fork = mon.wait_for(lambda e: e["evt.type"] == "fork" and e.get("proc.pid") == child, timeout=30)
        assert fork["cgroup.v1_id"] == cg.stat().st_ino
    assert ev.get("container.full_id") == box, ev.get("container.id")


CLONE_INTO_CGROUP = """
import ctypes, os, sys
CLONE_INTO_CGROUP, SYS_clone3 = 0x200000000, 435
class CloneArgs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("flags", "pidfd", "child_tid", "parent_tid",
                "exit_signal", "stack", "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")]
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
args = CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=17, cgroup=fd)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
pid = libc.syscall(SYS_clone3, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
if pid == 0:
    os._exit(0)
assert pid > 0, ctypes.get_errno()
os.waitpid(pid, 0)
print(pid)
"""


def test_a_child_cloned_into_another_cgroup_is_recorded_in_its_own(mon: RunningMonitor) -> None:
    """clone3(CLONE_INTO_CGROUP), as systemd starts services: the fork record's cgroup.id is
    the child's cgroup, not the parent's in whose context sched_process_fork runs."""
    here = own_cgroup2()
    target = here / f"cloned-{os.getpid()}"
    target.mkdir()
    try:
        out = subprocess.run([sys.executable, "-c", CLONE_INTO_CGROUP, str(target)], check=True,
                             capture_output=True, text=True, timeout=60).stdout
        child = int(out)
        fork = mon.wait_for(lambda e: e["evt.type"] == "fork" and e.get("proc.pid") == child, timeout=30)
        assert fork["cgroup.id"] == target.stat().st_ino != here.stat().st_ino
    finally:
        rmdir_soon(target)
