"""What the kernel executed and opened, not what the caller typed: evasions on the real kernel.

One `ringwatch run` with only the packaged default rules, recording events too. Each test
performs an evasion an attacker would try against a monitor that trusts the strings passed
to execve/open or the process name, and checks that the kernel-resolved fields
(proc.exepath, fd.name of an open) tell the truth and that the default rule it targets
still fires. Every test here failed before the kernel resolved paths (proc.exe was "./x",
fd.name the symlink, and a process named sshd was trusted).

The monitor traces only a cgroup holding this test process (so everything it starts), with
its own bpffs dir, control socket and empty rules.d (tests/scoped_monitor.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.monitor_proc import REPO, RunningMonitor, read_jsonl
from tests.scoped_monitor import scoped_monitor

pytestmark = pytest.mark.kernel

DEFAULT_RULES = REPO / "rules" / "default.yaml"
NOBODY = 65534
Event = dict[str, Any]


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMonitor]:
    with scoped_monitor(tmp_path_factory.mktemp("exe-truth"), "exe-truth", RunningMonitor) as m:
        assert m.wait_log("rules_loaded")["files"] == [str(DEFAULT_RULES)]
        yield m


@pytest.fixture
def shm_true() -> Iterator[Path]:
    """A copy of /bin/true in /dev/shm, the dropper's favourite place."""
    path = Path(f"/dev/shm/rw-x-{uuid.uuid4().hex[:8]}")
    shutil.copy("/bin/true", path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def run(argv: list[str], **kw: Any) -> int:
    """Run a program to completion; its pid (which is also the pid of what it execs)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, **kw)
    p.wait(timeout=60)
    return p.pid


def py(code: str, **kw: Any) -> int:
    """A Python child doing what the evasion needs (prctl, fexecve); its pid."""
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode(errors="replace")
    return p.pid


def wait(path_of: Callable[[], list[Event]], pred: Callable[[Event], bool], what: str,
         mon: RunningMonitor, timeout: float = 60) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in path_of():
            if pred(item):
                return item
        assert mon.proc is not None and mon.proc.poll() is None, mon.stderr_path.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout}s")


def exec_event(mon: RunningMonitor, pid: int, exepath: str | None = None) -> Event:
    """The first successful exec of pid (of exepath, if given)."""
    return wait(mon.events, lambda e: e.get("proc.pid") == pid and e["evt.type"] in ("execve", "execveat")
                and e["evt.rawres"] == 0 and exepath in (None, e.get("proc.exepath")),
                f"exec of pid {pid}", mon)


def alert(mon: RunningMonitor, rule: str, pid: int, **fields: Any) -> dict[str, Any]:
    def pred(a: Event) -> bool:
        return (a["rule"] == rule and a["event"]["proc.pid"] == pid
                and all(a["event"].get(k) == v for k, v in fields.items()))
    return wait(lambda: read_jsonl(mon.stdout_path), pred, f"{rule!r} alert for pid {pid}", mon)


def rules_for(mon: RunningMonitor, pid: int) -> list[str]:
    return [a["rule"] for a in read_jsonl(mon.stdout_path) if a["event"]["proc.pid"] == pid]


# --- executable truth -------------------------------------------------------------------


def test_relative_exec_from_dev_shm_is_resolved_and_raises(mon: RunningMonitor, shm_true: Path) -> None:
    pid = run([f"./{shm_true.name}"], cwd="/dev/shm")  # execve("./rw-x-...")
    ev = exec_event(mon, pid)
    assert ev["evt.arg.filename"] == f"./{shm_true.name}"  # what was passed
    assert ev["proc.exe"] == f"./{shm_true.name}"  # argv[0] (Falco's proc.exe), the same here
    assert ev["proc.exepath"] == str(shm_true)  # what ran
    st = shm_true.stat()
    assert ev["proc.exe_ino"] == st.st_ino
    assert (ev["proc.exe_ino_ctime"], ev["proc.exe_ino_mtime"]) == (st.st_ctime_ns, st.st_mtime_ns)
    assert ev["proc.exe_deleted"] is False and ev["proc.is_exe_from_memfd"] is False
    a = alert(mon, "Execution from /dev/shm", pid)
    assert f"exe={shm_true}" in a["output"]


def test_symlink_elsewhere_is_reported_by_its_target(mon: RunningMonitor, shm_true: Path) -> None:
    link = Path(f"/usr/local/bin/rw-link-{uuid.uuid4().hex[:8]}")
    link.symlink_to(shm_true)
    try:
        pid = run([str(link)])
    finally:
        link.unlink()
    ev = exec_event(mon, pid)
    assert (ev["evt.arg.filename"], ev["proc.exepath"]) == (str(link), str(shm_true))
    alert(mon, "Execution from /dev/shm", pid, **{"proc.exepath": str(shm_true)})


def test_execveat_empty_path_has_the_real_exepath(mon: RunningMonitor, shm_true: Path) -> None:
    # os.execve on an fd is fexecve: execveat(fd, "", argv, envp, AT_EMPTY_PATH).
    pid = py(f"import os\nfd = os.open({str(shm_true)!r}, os.O_RDONLY)\n"
             "if os.fork() == 0:\n    os.execve(fd, ['innocent'], {})\nos.wait()\n")
    ev = wait(mon.events, lambda e: e.get("proc.ppid") == pid and e["evt.type"] == "execveat"
              and e["evt.rawres"] == 0, "execveat by the child", mon)
    # Nothing was passed: "" as given, or the kernel's own name for it ("/dev/fd/N") when the
    # caller's empty string was not readable at sys_enter and the exec was read again.
    assert ev["evt.arg.filename"] == "" or ev["evt.arg.filename"].startswith("/dev/fd/")
    assert ev["proc.exe"] == "innocent"  # argv[0]: anything the caller likes
    assert ev["proc.exepath"] == str(shm_true)
    alert(mon, "Execution from /dev/shm", ev["proc.pid"], **{"evt.type": "execveat"})


def test_deleted_and_memfd_executables_are_marked(mon: RunningMonitor, shm_true: Path) -> None:
    gone = Path(f"/dev/shm/rw-gone-{uuid.uuid4().hex[:8]}")
    shutil.copy(shm_true, gone)
    deleted = py(f"import os\nfd = os.open({str(gone)!r}, os.O_RDONLY)\nos.unlink({str(gone)!r})\n"
                 "if os.fork() == 0:\n    os.execve(fd, ['x'], {})\nos.wait()\n")
    memfd = py("import os\nfd = os.memfd_create('rw-payload', 0)\n"
               "os.write(fd, open('/bin/true', 'rb').read())\n"
               "if os.fork() == 0:\n    os.execve(fd, ['x'], {})\nos.wait()\n")
    ev = wait(mon.events, lambda e: e.get("proc.ppid") == deleted and e["evt.type"] == "execveat"
              and e["evt.rawres"] == 0, "exec of a deleted file", mon)
    assert ev["proc.exe_deleted"] is True and ev["proc.is_exe_from_memfd"] is False
    assert ev["proc.exepath"] == str(gone)  # where it was: the dentry keeps its name
    alert(mon, "Execution from /dev/shm", ev["proc.pid"])
    ev = wait(mon.events, lambda e: e.get("proc.ppid") == memfd and e["evt.type"] == "execveat"
              and e["evt.rawres"] == 0, "exec of a memfd", mon)
    assert ev["proc.is_exe_from_memfd"] is True and ev["proc.exe_deleted"] is False
    assert ev["proc.exepath"] == "/memfd:rw-payload"
    alert(mon, "Fileless execution via memfd_create", ev["proc.pid"])


def test_ancestors_carry_their_resolved_exepath(mon: RunningMonitor, tmp_path: Path) -> None:
    shell = Path(f"/dev/shm/rw-sh-{uuid.uuid4().hex[:8]}")
    shutil.copy("/bin/dash", shell)
    try:
        pids = tmp_path / "pid"
        # `exit 0` keeps the shell from exec'ing its last command in its own place.
        parent = run([f"./{shell.name}", "-c", f"/bin/sh -c 'echo $$ > {pids}'; exit 0"], cwd="/dev/shm")
    finally:
        shell.unlink()
    child = int(pids.read_text())
    ev = exec_event(mon, child)
    assert ev["proc.ppid"] == parent
    assert ev["proc.pexepath"] == str(shell) and ev["proc.aexepath"][1] == str(shell)
    assert ev["proc.exepath"] == ev["proc.aexepath"][0] == os.path.realpath("/bin/sh")
    assert ev["proc.pexe"] == ev["proc.aexe"][1] == f"./{shell.name}"  # the parent's argv[0]


def test_is_exe_writable_follows_mode_and_owner(mon: RunningMonitor, shm_true: Path) -> None:
    os.chown(shm_true, NOBODY, NOBODY)  # /dev/shm: reachable by nobody, unlike pytest's tmp
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    system = run([*as_nobody, "/usr/bin/true"])  # root's 0755 file: not writable by nobody
    own = run([*as_nobody, str(shm_true)])  # nobody's own file
    root = run(["/usr/bin/true"])  # root may write any file
    assert exec_event(mon, system, "/usr/bin/true")["proc.is_exe_writable"] is False
    assert exec_event(mon, own, str(shm_true))["proc.is_exe_writable"] is True
    assert exec_event(mon, root, "/usr/bin/true")["proc.is_exe_writable"] is True


# --- trusted names ----------------------------------------------------------------------


def test_renamed_process_is_not_trusted(mon: RunningMonitor, tmp_path: Path) -> None:
    genuine = run(["passwd", "-S", "root"])  # really /usr/bin/passwd: trusted to read shadow
    renamed = py("import ctypes\nctypes.CDLL(None).prctl(15, b'sshd', 0, 0, 0)  # PR_SET_NAME\n"
                 "open('/etc/shadow').read()\n")
    link = tmp_path / "sshd"  # a symlink gives the name too: comm is the link's name
    link.symlink_to("/usr/bin/cat")
    by_link = run([str(link), "/etc/shadow"])
    a = alert(mon, "Read sensitive file untrusted", renamed, **{"fd.name": "/etc/shadow"})
    assert a["event"]["proc.name"] == "sshd" and a["event"]["proc.is_name_exe"] is False
    assert a["event"]["proc.exepath"] == os.path.realpath(sys.executable)
    a = alert(mon, "Read sensitive file untrusted", by_link, **{"fd.name": "/etc/shadow"})
    assert a["event"]["proc.name"] == "sshd" and a["event"]["proc.exepath"] == "/usr/bin/cat"
    assert "Read sensitive file untrusted" not in rules_for(mon, genuine)


# --- open truth -------------------------------------------------------------------------


def test_sensitive_file_through_a_symlink_raises(mon: RunningMonitor, tmp_path: Path) -> None:
    link = tmp_path / "notes.txt"
    link.symlink_to("/etc/shadow")
    benign = run(["cat", "/etc/hostname"])
    pid = run(["cat", str(link)])
    # Kept by the kernel's path filter (it judged the resolved path, not /tmp/...),
    # named by the file actually opened, and the rule fires.
    a = alert(mon, "Read sensitive file untrusted", pid, **{"fd.name": "/etc/shadow"})
    ev = a["event"]
    assert ev["fd.nameraw"] == str(link) and ev["fd.is_resolved"] is True
    assert rules_for(mon, benign) == []


# --- the process at exec ------------------------------------------------------------------


def test_cwd_session_group_tty_and_loginuid_at_exec(mon: RunningMonitor, tmp_path: Path) -> None:
    # setsid: a new session and group led by the exec'd process, without a terminal.
    leader = run(["setsid", "/usr/bin/true"], cwd=tmp_path)
    ev = exec_event(mon, leader, "/usr/bin/true")
    assert ev["proc.cwd"] == f"{tmp_path}/"  # Falco's form: a trailing slash
    assert (ev["proc.sid"], ev["proc.vpgid"], ev["proc.tty"]) == (leader, leader, 0)
    auid = int(Path("/proc/self/loginuid").read_text())
    assert ev["user.loginuid"] == (-1 if auid == 0xFFFFFFFF else auid)
    # Under a pseudo-terminal (script(1) gives its child one), tty_nr is that terminal's.
    out, pid = tmp_path / "tty", tmp_path / "pid"
    run(["script", "-qec", f"echo $$ > {pid}; stat -L -c %t:%T $(tty) > {out}; exec /usr/bin/true",
         "/dev/null"])
    major, minor = (int(x, 16) for x in out.read_text().split(":"))
    ev = exec_event(mon, int(pid.read_text()), "/usr/bin/true")
    assert ev["proc.tty"] == (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12) != 0


HIDDEN_ARGV = """
import ctypes, mmap, os
# The filename and argv live in a file mapping this process never touches: no page of it
# is mapped yet when execve runs, so they cannot be read from here at sys_enter.
path = {path!r}
with open(path, "wb") as f:
    f.write(b"/bin/true\\0{marker}\\0" + bytes(4096))
fd = os.open(path, os.O_RDONLY)
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
base = libc.mmap(None, 8192, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
argv = (ctypes.c_char_p * 3)(ctypes.c_char_p(base), ctypes.c_char_p(base + 10), None)
libc.execve(ctypes.c_void_p(base), argv, (ctypes.c_char_p * 1)(None))
raise SystemExit(f"execve failed: {{ctypes.get_errno()}}")
"""


def test_argv_from_an_untouched_mapping_is_still_recorded(mon: RunningMonitor, tmp_path: Path) -> None:
    """Evasion: argv and the filename passed from pages not yet mapped (BPF cannot fault
    them in at sys_enter). Without the re-read at sched_process_exec the event had
    proc.argv [] and evt.arg.filename "", and every rule on the command line was blind."""
    marker = f"--rw-hidden-{uuid.uuid4().hex[:8]}"
    pid = py(HIDDEN_ARGV.format(path=str(tmp_path / "argv.bin"), marker=marker))
    ev = exec_event(mon, pid, exepath=os.path.realpath("/bin/true"))
    assert ev["proc.argv"] == ["/bin/true", marker]
    assert ev["evt.arg.filename"] == "/bin/true"
    assert ev["proc.cmdline"] == f"true {marker}" and ev["proc.argv_truncated"] is False


def test_too_deep_to_resolve_is_missing_not_wrong(mon: RunningMonitor, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d"] * 40)  # past the walk's 32 components
    deep.mkdir(parents=True)
    shutil.copy("/bin/true", deep / "t")
    pid = run([str(deep / "t")])
    ev = exec_event(mon, pid)
    assert "proc.exepath" not in ev and ev["evt.arg.filename"] == str(deep / "t")
    assert ev["proc.exe_ino"] == (deep / "t").stat().st_ino  # the inode is still known
    # The rule falls back to the path as passed, absolute here.
    alert(mon, "Drop and execute new binary", pid)
