"""Falco's thread.cap_*, fd.l4proto, proc.is_exe_upper_layer and fd.sip.name on the real kernel.

One `ringwatch run` with Falco-syntax rules of this test's own naming each field, tracing
only a cgroup holding this test process (so everything it starts). Each test does the
real thing (drop capabilities with setpriv, connect TCP/UDP/raw sockets, exec from an
overlayfs upper and lower layer, connect to what a name resolves to) and checks the
recorded event against what the kernel holds, and that the rule naming the field fires
only where it should. What a process passes (argv, socket() arguments) cannot make
these fields say something else: they are read by the kernel programs from task->cred,
the fd's struct sock and the executed file's overlay inode.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.events.creds import caps_text
from tests.monitor_proc import RunningMonitor, read_jsonl
from tests.scoped_monitor import scoped_monitor

pytestmark = pytest.mark.kernel

STABLE = Path(__file__).resolve().parent / "fixtures" / "falco" / "falco_rules.yaml"

Event = dict[str, Any]
TAG = uuid.uuid4().hex[:8]
MARK = f"/dev/shm/rw-capmark-{TAG}"
RULES = f"""- ringwatch: {{syntax: falco}}
- rule: Marker read with CAP_SYS_ADMIN
  desc: the marker file opened by a task whose effective set holds CAP_SYS_ADMIN
  condition: >
    evt.type in (open, openat, openat2) and fd.name = {MARK}
    and thread.cap_effective contains CAP_SYS_ADMIN and thread.cap_effective icontains sys_module
  output: marker by %proc.name caps=%thread.cap_effective
  priority: WARNING
- rule: Raw socket
  desc: a socket whose kernel type is SOCK_RAW
  condition: evt.type = socket and fd.l4proto = raw
  output: raw socket by %proc.name
  priority: NOTICE
- rule: UDP connect
  desc: a connect of a UDP socket
  condition: evt.type = connect and fd.l4proto = udp and not fd.l4proto in (tcp, icmp, raw)
  output: udp connect to %fd.name
  priority: NOTICE
- rule: Exec from an overlay upper layer
  desc: Falco's "Drop and execute new binary in container" without the container part
  condition: >
    evt.type in (execve, execveat) and proc.is_exe_upper_layer = true
    and proc.exepath contains rw-ovl-
  output: upper exec %proc.exepath
  priority: WARNING
- rule: Connect to localhost by name
  desc: fd.sip.name as Falco's k8s_api_server macro uses it
  condition: evt.type = connect and fd.sip.name = localhost
  output: connect to %fd.sip (%fd.sip.name)
  priority: NOTICE
- rule: Connect to a name that does not resolve
  desc: matches nothing
  condition: evt.type = connect and fd.sip.name in (rw-nosuch-{TAG}.invalid)
  output: connect to %fd.sip
  priority: NOTICE
"""


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMonitor]:
    work = tmp_path_factory.mktemp("falco-fields")
    rules = work / "fields.yaml"
    rules.write_text(RULES)
    Path(MARK).write_text("marker\n")
    os.chmod(MARK, 0o644)
    try:
        with scoped_monitor(work, "falcofields", RunningMonitor,
                            {"outputs": {"alerts": {"journal": "never"}}},
                            args=["--no-default-rules", "--rules", str(rules), "--rules", str(STABLE)]) as m:
            loaded = m.wait_log("rules_loaded")
            assert (loaded["rules"], loaded["skipped"]) == (6 + 25, {})  # Falco's 25 stable rules, all
            yield m
    finally:
        Path(MARK).unlink(missing_ok=True)


def wait(mon: RunningMonitor, pred: Callable[[Event], bool], what: str, alerts: bool = False,
         timeout: float = 60) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in read_jsonl(mon.stdout_path) if alerts else mon.events():
            if pred(item):
                return item
        assert mon.proc is not None and mon.proc.poll() is None, mon.stderr_path.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout}s")


def alerts_of(mon: RunningMonitor, rule: str) -> list[Event]:
    return [a for a in read_jsonl(mon.stdout_path) if a["rule"] == rule]


def child(code: str) -> int:
    """A Python child doing the socket work; its pid."""
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode(errors="replace")
    return p.pid


# --- thread.cap_* ----------------------------------------------------------------------


def _status_caps(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("CapEff", "CapPrm", "CapInh"):
            out[key] = int(value.strip(), 16)
    return out


def _marker_open(mon: RunningMonitor, pid: int) -> Event:
    return wait(mon, lambda e: e.get("proc.pid") == pid and e["evt.type"] in ("open", "openat")
                and e.get("fd.name") == MARK, f"marker open by {pid}")


def test_caps_are_the_tasks_own_root_and_dropped(mon: RunningMonitor, tmp_path: Path) -> None:
    # Root, then root without CAP_SYS_ADMIN in its bounding set (so not in what its exec
    # gets), named CAP_SYS_ADMIN by argv[0] to show names and arguments do not count.
    # Each shell writes what /proc says of its own credentials, then opens the marker.
    # Root goes last: events are judged in order, so once its alert is out, any alert
    # for the others would be out too.
    script = f"grep Cap /proc/self/status > {tmp_path}/$1; exec -a CAP_SYS_ADMIN cat {MARK}"
    dropped = subprocess.Popen(["setpriv", "--bounding-set=-sys_admin", "bash", "-c", script, "bash",
                                "dropped"], stdout=subprocess.DEVNULL)
    dropped.wait(timeout=60)
    nobody = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               "cat", MARK], stdout=subprocess.DEVNULL)
    nobody.wait(timeout=60)
    root = subprocess.Popen(["bash", "-c", script, "bash", "root"], stdout=subprocess.DEVNULL)
    root.wait(timeout=60)
    assert (root.returncode, dropped.returncode, nobody.returncode) == (0, 0, 0)

    for who, proc in (("root", root), ("dropped", dropped)):
        want = _status_caps((tmp_path / who).read_text())
        ev = _marker_open(mon, proc.pid)
        assert ev["proc.name"] == "cat"  # argv[0] was CAP_SYS_ADMIN
        assert ev["thread.cap_effective"] == caps_text(want["CapEff"]), who
        assert ev["thread.cap_permitted"] == caps_text(want["CapPrm"]), who
        assert ev["thread.cap_inheritable"] == caps_text(want["CapInh"]), who
        # The exec event carries the new image's credentials too.
        ex = wait(mon, lambda e, p=proc.pid: e.get("proc.pid") == p and e["evt.type"] == "execve"
                  and e.get("proc.exepath") == "/usr/bin/cat", f"exec of cat by {who}")
        assert ex["thread.cap_effective"] == ev["thread.cap_effective"]

    root_ev, dropped_ev = _marker_open(mon, root.pid), _marker_open(mon, dropped.pid)
    assert "CAP_SYS_ADMIN" in root_ev["thread.cap_effective"].split()
    assert root_ev["thread.cap_effective"].startswith("CAP_CHOWN CAP_DAC_OVERRIDE ")
    assert "CAP_SYS_ADMIN" not in dropped_ev["thread.cap_effective"].split()
    assert "CAP_CHOWN" in dropped_ev["thread.cap_effective"].split()
    nobody_ev = _marker_open(mon, nobody.pid)
    assert nobody_ev["user.uid"] == 65534
    assert (nobody_ev["thread.cap_effective"], nobody_ev["thread.cap_permitted"]) == ("", "")

    rule = "Marker read with CAP_SYS_ADMIN"
    wait(mon, lambda a: a["rule"] == rule and a["event"]["proc.pid"] == root.pid, "root's alert", alerts=True)
    fired = {a["event"]["proc.pid"] for a in alerts_of(mon, rule)}
    assert dropped.pid not in fired and nobody.pid not in fired


# --- fd.l4proto ------------------------------------------------------------------------


def test_l4proto_comes_from_the_kernels_socket(mon: RunningMonitor) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    tcp_port = server.getsockname()[1]
    try:
        # socket(AF_INET, SOCK_STREAM, 0): the arguments name no protocol; the kernel's
        # sock says IPPROTO_TCP.
        tcp = child(f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0)\n"
                    f"s.connect(('127.0.0.1', {tcp_port}))\n")
        peer, _ = server.accept()
        client_port = peer.getpeername()[1]
        peer.close()
    finally:
        server.close()
    udp = child("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "s.connect(('127.0.0.1', 9))\n")
    udp6 = child("import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
                 "s.connect(('::1', 9))\n")
    raw = child("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n"
                "s.connect(('127.0.0.1', 0))\n")
    unix = child("import socket\ns = socket.socket(socket.AF_UNIX)\n"
                 "try:\n    s.connect('/nonexistent-rw-sock')\nexcept OSError:\n    pass\n")
    # Last, one of each kind the rules look for: once their alerts are out, any alert for
    # the connects before them would be out too (events are judged in order).
    last_raw = child("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n")
    last_udp = child("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                     "s.connect(('127.0.0.1', 7))\n")

    def connect_of(pid: int) -> Event:
        return wait(mon, lambda e: e.get("proc.pid") == pid and e["evt.type"] == "connect",
                    f"connect by {pid}")

    def socket_of(pid: int) -> Event:
        return wait(mon, lambda e: e.get("proc.pid") == pid and e["evt.type"] == "socket"
                    and e["evt.arg.domain"] != "AF_UNIX", f"socket by {pid}")

    tcp_ev = connect_of(tcp)
    assert tcp_ev["fd.l4proto"] == "tcp"
    # The kernel's ends of the connected socket, as the server saw them.
    assert (tcp_ev["fd.connected"], tcp_ev["fd.cip"], tcp_ev["fd.cport"]) == (True, "127.0.0.1", client_port)
    assert (tcp_ev["fd.sip"], tcp_ev["fd.sport"], tcp_ev["fd.lport"]) == ("127.0.0.1", tcp_port, client_port)
    sock_ev = socket_of(tcp)
    assert (sock_ev["evt.arg.proto"], sock_ev["fd.l4proto"]) == (0, "tcp")
    assert connect_of(udp)["fd.l4proto"] == "udp"
    ev6 = connect_of(udp6)
    assert (ev6["fd.l4proto"], ev6["fd.type"]) == ("udp", "ipv6")
    assert connect_of(raw)["fd.l4proto"] == "raw"
    assert socket_of(raw)["fd.l4proto"] == "raw"
    assert "fd.l4proto" not in connect_of(unix)  # Falco's <NA>: not an IP socket

    for rule, pid in (("Raw socket", last_raw), ("UDP connect", last_udp)):
        wait(mon, lambda a, r=rule, p=pid: a["rule"] == r and a["event"]["proc.pid"] == p, rule, alerts=True)
    assert {a["event"]["proc.pid"] for a in alerts_of(mon, "UDP connect")} >= {udp, udp6}
    assert raw in {a["event"]["proc.pid"] for a in alerts_of(mon, "Raw socket")}
    assert {a["event"]["proc.pid"] for a in alerts_of(mon, "UDP connect")} & {tcp, raw, unix} == set()
    assert {a["event"]["proc.pid"] for a in alerts_of(mon, "Raw socket")} & {tcp, udp, udp6} == set()


# --- proc.is_exe_upper_layer -----------------------------------------------------------


@pytest.fixture
def overlay(tmp_path: Path) -> Iterator[Path]:
    """An overlayfs whose lower layer holds two copies of /bin/true; the merged dir."""
    lower, upper, workdir, merged = (tmp_path / d for d in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, workdir, merged):
        d.mkdir()
    shutil.copy("/bin/true", lower / f"rw-ovl-lower-{TAG}")
    shutil.copy("/bin/true", lower / f"rw-ovl-touched-{TAG}")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={workdir}", str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False)


def test_exec_from_overlay_upper_and_lower_layer(mon: RunningMonitor, overlay: Path) -> None:
    lower_exe = overlay / f"rw-ovl-lower-{TAG}"
    upper_exe = overlay / f"rw-ovl-upper-{TAG}"  # dropped in after the mount
    shutil.copy("/bin/true", upper_exe)
    touched = overlay / f"rw-ovl-touched-{TAG}"  # an image file written to: copied up
    with open(touched, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(first)  # the same byte: a write all the same
    pids = {}
    # "touched" last: once its alert is out, alerts for the others would be too.
    for name, path in (("lower", lower_exe), ("host", Path("/bin/true")), ("upper", upper_exe),
                       ("touched", touched)):
        # Named after the other kind, to show the name is not what decides.
        p = subprocess.Popen(["bash", "-c", f'exec -a rw-ovl-lower "{path}"'])
        p.wait(timeout=60)
        assert p.returncode == 0
        pids[name] = p.pid

    def exec_of(name: str) -> Event:
        return wait(mon, lambda e: e.get("proc.pid") == pids[name] and e["evt.type"] == "execve"
                    and e["evt.rawres"] == 0 and "bash" not in e.get("proc.exepath", "bash"), f"exec {name}")

    got = {n: (exec_of(n)["proc.is_exe_upper_layer"], exec_of(n)["proc.is_exe_lower_layer"]) for n in pids}
    assert got == {"lower": (False, True), "upper": (True, False), "touched": (True, False),
                   "host": (False, False)}
    assert exec_of("upper")["proc.exepath"] == str(upper_exe)

    rule = "Exec from an overlay upper layer"
    wait(mon, lambda a: a["rule"] == rule and a["event"]["proc.pid"] == pids["touched"], "alert", alerts=True)
    fired = {a["event"]["proc.pid"] for a in alerts_of(mon, rule)}
    assert pids["upper"] in fired and pids["lower"] not in fired and pids["host"] not in fired


# --- fd.sip.name -----------------------------------------------------------------------


def test_sip_name_matches_what_the_name_resolves_to(mon: RunningMonitor) -> None:
    rule = "Connect to localhost by name"
    # The resolver runs in the background from rule load: keep connecting until the
    # monitor has its answer (a new port each time, so no connect coalesces into another).
    port, hit = 20000 + os.getpid() % 20000, None
    for attempt in range(60):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", port + attempt))
        s.close()
        ev = wait(mon, lambda e, p=port + attempt: e["evt.type"] == "connect" and e.get("fd.sport") == p
                  and e.get("proc.pid") == os.getpid(), "the connect")
        if ev["fd.sip.name"]:
            hit = port + attempt
            break
        time.sleep(0.5)
    assert hit is not None, "localhost never resolved"
    assert ev["fd.sip.name"] == ["localhost"] and ev["fd.sip"] == "127.0.0.1"
    wait(mon, lambda a: a["rule"] == rule and a["event"]["fd.sport"] == hit, "localhost alert", alerts=True)

    # 127.0.0.2 is loopback too, but not an address "localhost" resolves to.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.2", hit))
    s.close()
    other = wait(mon, lambda e: e["evt.type"] == "connect" and e.get("fd.sip") == "127.0.0.2"
                 and e.get("fd.sport") == hit, "the connect to 127.0.0.2")
    assert other["fd.sip.name"] == []
    # Then 127.0.0.1 again: once its alert is out, one for 127.0.0.2 would be too.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", hit + 1))
    s.close()
    wait(mon, lambda a: a["rule"] == rule and a["event"]["fd.sport"] == hit + 1, "second alert", alerts=True)
    assert [a for a in alerts_of(mon, rule) if a["event"]["fd.sip"] != "127.0.0.1"] == []
    assert alerts_of(mon, "Connect to a name that does not resolve") == []


# --- Falco's "Disallowed SSH Connection Non Standard Port" -----------------------------


def test_ssh_to_a_non_standard_port_fires_and_its_near_misses_do_not(mon: RunningMonitor,
                                                                     tmp_path: Path) -> None:
    # Falco's proc.exe is argv[0]: a program run as ".../ssh" (a link to python3). A
    # non-blocking connect is EINPROGRESS, which the rule's `outbound` macro accepts.
    ssh = tmp_path / "ssh"
    ssh.symlink_to(os.path.realpath(sys.executable))
    code = ("import socket, sys\ns = socket.socket({family})\ns.setblocking(False)\n"
            "try:\n    s.connect(({addr!r}, {port}))\nexcept BlockingIOError:\n    pass\n")

    def run(family: str, addr: str, port: int, prog: Path = ssh) -> int:
        p = subprocess.Popen([str(prog), "-c", code.format(family=family, addr=addr, port=port)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode(errors="replace")
        return p.pid

    # TEST-NET addresses, routed out but never answered: the connect stays in progress.
    misses = {
        "standard port": run("socket.AF_INET", "198.51.100.7", 22),
        "private network": run("socket.AF_INET", "10.11.12.13", 443),
        "loopback": run("socket.AF_INET", "127.0.0.1", 443),
        "udp": run("socket.AF_INET, socket.SOCK_DGRAM", "198.51.100.7", 443),
        "not ssh": run("socket.AF_INET", "198.51.100.7", 443, prog=Path(sys.executable)),
    }
    hit = run("socket.AF_INET", "198.51.100.7", 4444)  # last: judged after all the misses
    rule = "Disallowed SSH Connection Non Standard Port"
    alert = wait(mon, lambda a: a["rule"] == rule and a["event"]["proc.pid"] == hit, "ssh alert", alerts=True)
    ev = alert["event"]
    assert (ev["fd.sip"], ev["fd.sport"], ev["fd.l4proto"], ev["evt.errno"]) == ("198.51.100.7", 4444, "tcp",
                                                                                 "EINPROGRESS")
    assert ev["fd.cip"] != "0.0.0.0" and ev["fd.connected"] is True
    fired = {a["event"]["proc.pid"] for a in alerts_of(mon, rule)}
    assert {name for name, pid in misses.items() if pid in fired} == set()
