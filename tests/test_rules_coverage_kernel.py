"""The default rules on the coverage syscalls, on the real kernel.

Same set-up as tests/test_rules_default_kernel.py (one `ringwatch run` with only
rules/default.yaml, tracing a cgroup that holds this test and its children): each test
performs the attack for real, with its evasions (a symlink, a relative path, an fd), and a
benign look-alike first, which must stay quiet.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import test_rules_default_kernel as default_rules
from tests.test_rules_default_kernel import (
    AlertMonitor,
    Listener,
    alert_for,
    assert_attributed,
    assert_no_alerts,
    me,
    run,
)

# The same fixtures (a monitor of their own for this module): the traced cgroup, the
# monitor with only rules/default.yaml, a TCP listener.
scope = default_rules.scope
mon = default_rules.mon
listener = default_rules.listener

pytestmark = pytest.mark.kernel
ACTIONS = Path(__file__).resolve().parent / "coverage_rules_actions.py"
NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def action(name: str, *args: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, str(ACTIONS), name, *args], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, f"{name} failed ({p.returncode}): {p.stderr}"
    report: dict[str, Any] = json.loads(p.stdout)
    return report


@contextlib.contextmanager
def system_dir() -> Iterator[Path]:
    """A scratch directory below /usr/lib (a system directory only root writes)."""
    d = Path(f"/usr/lib/ringwatch-test-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- defense evasion ------------------------------------------------------------------------


def test_log_truncated_by_truncate_even_through_a_link(mon: AlertMonitor, tmp_path: Path) -> None:
    rule = "Log file truncated by truncate or ftruncate"
    log = Path(f"/var/log/rw-test-{uuid.uuid4().hex[:8]}.log")
    log.write_text("evidence\n")
    link = tmp_path / "notes.txt"
    link.symlink_to(log)
    try:
        benign = run(["truncate", "-s0", str(tmp_path / "scratch.txt")])
        bad = run(["truncate", "-s0", str(log)])  # open without O_TRUNC, then ftruncate(fd, 0)
        a = alert_for(mon, rule, bad, **{"fd.name": str(log)})
        assert_attributed(a, bad, *me())
        assert a["event"]["evt.type"] == "ftruncate" and a["event"]["evt.arg.length"] == 0
        log.write_text("evidence\n")
        evasive = run(["truncate", "-s0", str(link)])
        a = alert_for(mon, rule, evasive, **{"fd.name": str(log)})
        assert a["event"]["fd.is_resolved"] is True
        assert log.read_text() == ""
    finally:
        log.unlink(missing_ok=True)
    assert_no_alerts(mon, [benign], "truncating a file in /tmp")


def test_timestomping_of_a_system_file(mon: AlertMonitor, tmp_path: Path) -> None:
    rule = "Timestomping of a system file"
    with system_dir() as d:
        f = d / "tool"
        f.write_text("")
        benign = [run(["touch", str(f)]),  # now: an ordinary touch
                  run(["touch", "-d", "2001-01-01 00:00", str(tmp_path / "old")])]
        bad = run(["touch", "-d", "2001-01-01 00:00", str(f)])
        a = alert_for(mon, rule, bad, **{"fd.name": str(f)})
        assert_attributed(a, bad, *me())
        assert a["event"]["evt.arg.mtime"] == int(f.stat().st_mtime_ns)
        evasive = run(["touch", "-r", "/bin/ls", "tool"], cwd=d)  # relative, times copied
        a = alert_for(mon, rule, evasive, **{"fd.name": str(f)})
        assert a["event"]["evt.arg.mtime"] == os.stat("/bin/ls").st_mtime_ns
    assert_no_alerts(mon, benign, "touch with the current time, touch -d in /tmp")


def test_file_capabilities_set(mon: AlertMonitor, tmp_path: Path) -> None:
    rule = "File capabilities set"
    prog, other = tmp_path / "prog", tmp_path / "other"
    shutil.copy("/bin/true", prog)
    shutil.copy("/bin/true", other)
    benign = run([sys.executable, "-c", f"import os; os.setxattr({str(prog)!r}, 'user.note', b'1')"])
    bad = run(["setcap", "cap_net_raw+ep", str(prog)])
    a = alert_for(mon, rule, bad, **{"fd.name": str(prog)})
    assert_attributed(a, bad, *me())
    value = os.getxattr(prog, "security.capability")
    evasive = run([sys.executable, "-c", f"import os; fd = os.open({str(other)!r}, os.O_RDONLY); "
                   f"os.setxattr(fd, 'security.capability', {value!r})"])
    a = alert_for(mon, rule, evasive, **{"evt.type": "fsetxattr", "fd.name": str(other)})
    assert os.getxattr(other, "security.capability") == value
    assert_no_alerts(mon, [benign], "a user.* xattr")


def test_hidden_directory_in_a_system_directory(mon: AlertMonitor, tmp_path: Path) -> None:
    rule = "Hidden directory created in a system directory"
    with system_dir() as d:
        alias = tmp_path / "alias"
        alias.symlink_to(d)
        benign = [run(["mkdir", str(d / "visible")]), run(["mkdir", str(tmp_path / ".hidden")])]
        bad = run(["mkdir", str(d / ".x")])
        a = alert_for(mon, rule, bad, **{"fd.name": str(d / ".x")})
        assert_attributed(a, bad, *me())
        relative = run(["mkdir", ".y"], cwd=d)
        alert_for(mon, rule, relative, **{"fd.name": str(d / ".y"), "fd.nameraw": ".y"})
        linked = run(["mkdir", str(alias / ".z")])  # a link in /tmp to the system directory
        alert_for(mon, rule, linked, **{"fd.name": str(d / ".z")})
    assert_no_alerts(mon, benign, "a visible directory in /usr/lib, a hidden one in /tmp")


# --- privilege escalation and execution ------------------------------------------------------


@contextlib.contextmanager
def fake_container(scope: Path) -> Iterator[Path]:
    """A cgroup named as docker names a container's, below the traced one: container.id is
    what the monitor derives from it."""
    cg = scope / f"docker-{uuid.uuid4().hex}{uuid.uuid4().hex}.scope"
    cg.mkdir()
    try:
        yield cg
    finally:
        with contextlib.suppress(OSError):
            cg.rmdir()


def _setns_in(cgroup: Path | None) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    join = f"echo $$ > {cgroup / 'cgroup.procs'} && " if cgroup else ""
    p = subprocess.Popen(["/bin/sh", "-c", f"{join}exec {sys.executable} {ACTIONS} setns_wait {os.getpid()}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    return p, json.loads(p.stdout.readline())


def test_namespace_change_from_a_container(mon: AlertMonitor, scope: Path) -> None:
    rule = "Namespace change from a container"
    host, benign = _setns_in(None)  # nsenter-like, on the host: administration
    try:
        with fake_container(scope) as cg:
            inside, bad = _setns_in(cg)
            try:
                assert bad["ret"] == 0, bad
                a = alert_for(mon, rule, bad["pid"])
                assert a["event"]["container.id"] == cg.name.removeprefix("docker-")[:12]
                assert (a["event"]["evt.arg.nstype"], a["event"]["evt.arg.ns"]) == ("CLONE_NEWUTS", "uts")
                assert_attributed(a, bad["pid"], *me())  # sh exec'd the action: pytest's child
            finally:
                inside.communicate("")
    finally:
        host.communicate("")
    assert_no_alerts(mon, [benign["pid"]], "setns on the host")


def test_interpreter_listening_on_a_network_port(mon: AlertMonitor, tmp_path: Path) -> None:
    rule = "Interpreter listening on a network port"
    unix = tmp_path / "s.sock"
    benign = [run([sys.executable, "-c", "import socket; s = socket.socket(); "
                   "s.bind(('127.0.0.1', 0)); s.listen()"]),
              run([sys.executable, "-c", f"import socket; s = socket.socket(socket.AF_UNIX); "
                   f"s.bind({str(unix)!r}); s.listen()"])]
    bad = run([sys.executable, "-c", "import socket; s = socket.socket(); "
               "s.bind(('0.0.0.0', 0)); s.listen()"])
    a = alert_for(mon, rule, bad)
    assert_attributed(a, bad, *me())
    assert a["event"]["fd.lip"] == "0.0.0.0" and a["event"]["fd.lport"] > 0
    assert_no_alerts(mon, benign, "loopback and unix listeners")


def test_redirect_stdin_to_a_socket_with_dup_or_fcntl(mon: AlertMonitor, listener: Listener) -> None:
    rule = "Redirect stdout/stdin to network connection"
    benign = action("dup_socket", str(listener.port), "pipe")
    for how in ("dup", "fcntl"):
        bad = action("dup_socket", str(listener.port), how)
        assert bad["fd"] == 0, bad
        a = alert_for(mon, rule, bad["pid"], **{"evt.type": how})
        assert_attributed(a, bad["pid"], *me())
        assert a["event"]["fd.rport"] == listener.port
    assert_no_alerts(mon, [benign["pid"]], "dup of a pipe onto stdin")


def test_memory_written_into_another_process(mon: AlertMonitor) -> None:
    rule = "Memory written into another process"
    benign = action("vm_write", "self")
    bad = action("vm_write", "child")
    assert bad["landed"] and benign["landed"], (bad, benign)
    a = alert_for(mon, rule, bad["pid"], **{"evt.arg.pid": bad["target"]})
    assert_attributed(a, bad["pid"], *me())
    assert_no_alerts(mon, [benign["pid"]], "process_vm_writev into itself")


# --- impact ---------------------------------------------------------------------------------


def test_non_root_signals_another_users_process(mon: AlertMonitor) -> None:
    rule = "Non-root process signalled another user's process"
    roots = subprocess.Popen(["sleep", "60"])
    theirs = subprocess.Popen([*AS_NOBODY, "sleep", "60"])
    try:
        benign = [run([*AS_NOBODY, "/bin/sh", "-c", "sleep 30 & kill $!"]),  # own process
                  run([*AS_NOBODY, "kill", "-0", str(roots.pid)]),  # an existence probe
                  run(["kill", "-CONT", str(theirs.pid)])]  # root
        bad = run([*AS_NOBODY, "kill", "-TERM", str(roots.pid)])
        a = alert_for(mon, rule, bad)
        assert_attributed(a, bad, *me())
        ev = a["event"]
        assert (ev["evt.errno"], ev["evt.arg.sig"], ev["evt.target.uid"], ev["user.uid"]) == (
            "EPERM", "SIGTERM", 0, NOBODY)
        assert roots.poll() is None
    finally:
        for p in (roots, theirs):
            p.kill()
            p.wait()
    assert_no_alerts(mon, benign, "a user killing its own process, a signal-0 probe, root")
