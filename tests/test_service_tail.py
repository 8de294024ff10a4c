"""`ringwatch tail`: filters, a slow or vanished client, and a real daemon streaming alerts."""

from __future__ import annotations

import json
import re
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

from monitor.service import control
from monitor.service.tail import TailFilter, TailHub
from monitor.sinks.emit import Emit
from tests.monitor_proc import REPO, RunningMonitor


def alert(rule: str = "R", priority: str = "WARNING", **event: Any) -> dict[str, Any]:
    return {"rule": rule, "priority": priority, "output": "o", "event": {"evt.type": "execve", **event}}


def test_filter_priority_is_at_or_above() -> None:
    f = TailFilter.from_json({"priority": "warning"})
    assert f.alert_ok(alert(priority="CRITICAL")) and f.alert_ok(alert(priority="WARNING"))
    assert not f.alert_ok(alert(priority="NOTICE"))
    assert not f.event_ok({"evt.type": "execve"})  # events only when asked


def test_filter_rule_type_pid_exe() -> None:
    f = TailFilter.from_json({"rules": ["A"], "types": ["execve"], "pid": 7, "exe": "/bin/x", "events": True})
    assert f.alert_ok(alert("A", **{"proc.pid": 7, "proc.exepath": "/bin/x"}))
    assert not f.alert_ok(alert("B", **{"proc.pid": 7, "proc.exepath": "/bin/x"}))
    assert not f.alert_ok(alert("A", **{"proc.pid": 8, "proc.exepath": "/bin/x"}))
    assert not f.alert_ok(alert("A", **{"proc.pid": 7, "proc.exepath": "/bin/y"}))
    assert f.event_ok({"evt.type": "execve", "proc.pid": 7, "proc.exepath": "/bin/x"})
    assert not f.event_ok({"evt.type": "openat", "proc.pid": 7, "proc.exepath": "/bin/x"})


@pytest.mark.parametrize(("data", "error"), [
    ({"priority": "LOUD"}, "priority: 'LOUD' is not one of"),
    ({"pid": "7"}, "pid: expected an integer"),
    ({"rule": "A"}, "unknown filter key"),
    ({"rules": "A"}, "rules: expected a list of strings"),
])
def test_bad_filter_is_refused_with_reason(data: dict[str, Any], error: str) -> None:
    hub = TailHub(Emit([], []))
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert hub.accept(ours, json.dumps(data)) is False
        reply = json.loads(theirs.recv(4096))
    assert reply["ok"] is False and error in reply["error"]
    assert hub.stats()["refused"] == 1 and hub.clients == []


def run_bounded(fn: Callable[[], None]) -> None:
    """fn in a thread: if it blocked (the main loop waiting on a client), this fails
    instead of the test hanging."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), "emit blocked on a tail client"


def test_slow_client_drops_and_counts_never_blocks_emit() -> None:
    emit = Emit([], [])
    hub = TailHub(emit, queue_records=16)
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert hub.accept(ours, "{}")
    theirs.recv(4096)  # the ok reply; then this client reads nothing
    big = "x" * 2000
    n = 5000
    run_bounded(lambda: [emit.alert(alert(output=big)) for _ in range(n)])  # type: ignore[func-returns-value]
    st = hub.stats()
    assert st["dropped"] > 0 and st["clients"] == 1
    # The client catches up: it is told how many it lost, then gets records again.
    theirs.settimeout(30)
    reader = theirs.makefile("rb")
    seen_drop_notice = 0
    records = 0
    deadline = time.monotonic() + 60
    while seen_drop_notice == 0:
        rec = json.loads(reader.readline())
        if "tail_dropped" in rec:
            seen_drop_notice = rec["tail_dropped"]
        else:
            records += 1
        assert time.monotonic() < deadline
    emit.alert(alert("after"))  # the next record carries the notice
    assert seen_drop_notice + records <= n
    dropped = hub.stats()["dropped"]  # no record is emitted from here on
    reader.close()  # the file holds the socket open too
    theirs.close()
    # A vanished client is noticed (by its writer) and unsubscribed on a later tick.
    deadline = time.monotonic() + 30
    while hub.clients:
        hub.reap()
        assert time.monotonic() < deadline, "closed client never reaped"
        time.sleep(0.1)
    assert emit.subscribers == []
    assert hub.stats()["dropped"] == dropped  # totals survive the client


@pytest.fixture
def bpffs_dir() -> Iterator[Path]:
    path = Path(f"/sys/fs/bpf/rw-ops17-{uuid.uuid4().hex[:8]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tail_cmd(sock: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", "tail", "--control-socket", str(sock), *args]


def wait_clients(sock: Path, n: int) -> None:
    deadline = time.monotonic() + 30
    while control.request(sock, "stats")["service"]["tail"]["clients"] != n:
        assert time.monotonic() < deadline, f"never {n} tail clients"
        time.sleep(0.1)


@pytest.mark.kernel
def test_tail_streams_one_rules_alerts_live(tmp_path: Path, bpffs_dir: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    wanted, other = tmp_path / f"rwtaila{tag}", tmp_path / f"rwtailb{tag}"
    for exe in (wanted, other):
        shutil.copy("/bin/true", exe)
    rules = tmp_path / "rules.yaml"
    rules.write_text("".join(
        f"- rule: {name}\n"
        f'  condition: evt.type == "execve" and proc.name == "{exe.name}"\n'
        f'  output: "{exe.name} ran (pid=%proc.pid)"\n'
        f"  priority: {prio}\n"
        for name, exe, prio in (("Tail wanted", wanted, "WARNING"), ("Tail other", other, "CRITICAL"))
    ))
    cfg = {"lineage": {"bpffs_dir": str(bpffs_dir), "max_entries": 4096}, "enforcement": {"enabled": False}}
    mon = RunningMonitor(tmp_path / "mon", cfg, args=["--no-default-rules", "--rules", str(rules)])
    with mon:
        sock = mon.control_socket
        # A client that subscribes to every event and never reads, and one that vanishes.
        stuck = control.connect(sock)
        stuck.sendall(b'tail {"events": true}\n')
        vanished = control.connect(sock)
        vanished.sendall(b"tail {}\n")
        vanished.recv(4096)
        vanished.close()
        # The vanished one is reaped before the commands attach, so counting 3 below means
        # both commands are subscribed (not "two, and the vanished one not yet noticed").
        wait_clients(sock, 1)
        as_json = subprocess.Popen(tail_cmd(sock, "--rule", "Tail wanted", "-o", "json", "--count", "2"),
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        as_text = subprocess.Popen(tail_cmd(sock, "--rule", "Tail wanted", "-o", "text", "--count", "1"),
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_clients(sock, 3)  # stuck, and the two commands; the vanished one is gone
        subprocess.run([str(other)], check=True)
        pids = []
        for _ in range(2):
            p = subprocess.Popen([str(wanted)])
            p.wait()
            pids.append(p.pid)
        out, err = as_json.communicate(timeout=60)
        assert as_json.returncode == 0, err
        got = [json.loads(line) for line in out.splitlines()]
        assert [a["rule"] for a in got] == ["Tail wanted", "Tail wanted"]
        assert [a["process"]["pid"] for a in got] == pids
        text, err = as_text.communicate(timeout=60)
        assert as_text.returncode == 0, err
        assert re.fullmatch(rf"\S+Z WARNING  Tail wanted: {wanted.name} ran \(pid={pids[0]}\)\n", text)
        # The stuck client cost the daemon nothing: it answers, and is still attached.
        st = control.request(sock, "stats")
        assert st["alerts"]["by_rule"] == {"Tail other": 1, "Tail wanted": 2}
        wait_clients(sock, 1)
        stuck.close()
        wait_clients(sock, 0)
        bad = subprocess.run(tail_cmd(sock, "--priority", "LOUD"), cwd=REPO, capture_output=True, text=True)
        assert bad.returncode == 2 and "priority: 'LOUD' is not one of" in bad.stderr
        assert "Traceback" not in bad.stderr
        assert mon.stop() == 0


def test_hostile_request_cannot_take_the_control_loop_down(tmp_path: Path) -> None:
    # json.loads of 4000 nested arrays raises RecursionError, not ValueError.
    from monitor.service.control import ControlServer

    hub = TailHub(Emit([], []))
    server = ControlServer(tmp_path / "c.sock", {"stats": lambda: {}}, {"tail": hub.accept})
    server.open()
    try:
        client = control.connect(tmp_path / "c.sock")
        client.sendall(b"tail " + b"[" * 4000 + b"\n")
        assert server.serve_pending() == 1
        reply = json.loads(client.recv(4096))
        assert reply["ok"] is False and "tail:" in reply["error"]
        client.close()
        assert server.errors == 1 and hub.clients == []
    finally:
        server.close()
