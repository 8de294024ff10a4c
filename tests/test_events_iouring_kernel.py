"""io_uring on the real kernel: opens and connects that never make a syscall of their own.

A program can read /etc/shadow or reach a server through an io_uring ring with no openat
or connect syscall at all (the "curing" rootkit, ARMO 2025). tests/uring_client.py does
exactly that with raw io_uring_setup, mmap and io_uring_enter (no liburing), in a process
of its own; the default rules must judge the operation as they judge the syscall, and
the kernel's open path filter must judge both the path given and the file opened.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.monitor_proc import REPO, RunningMonitor
from tests.scoped_monitor import alerts_of, default_rules_monitor, wait_alert

pytestmark = pytest.mark.kernel

SHADOW_RULE = "Read sensitive file untrusted"
Event = dict[str, Any]


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMonitor]:
    # io_uring_setup is recorded on request; the opens and connects because default rules
    # ask for openat/openat2/connect.
    with default_rules_monitor(tmp_path_factory.mktemp("uring"), "uring", ["io_uring_setup"]) as m:
        yield m


@pytest.fixture(scope="module")
def private_dir() -> Iterator[Path]:
    """Outside every prefix the default rules name (so outside the kernel's open filter)."""
    d = Path(f"/run/ringwatch-test-{uuid.uuid4().hex[:8]}")
    d.mkdir(mode=0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def uring(*args: str) -> dict[str, Any]:
    """Run one io_uring operation in a process of its own; its report (pid, res, read)."""
    out = subprocess.run([sys.executable, "-m", "tests.uring_client", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    report: dict[str, Any] = json.loads(out)
    return report


def events_of(mon: RunningMonitor, pid: int, evt_type: str) -> list[Event]:
    return [e for e in mon.events() if e["proc.pid"] == pid and e["evt.type"] == evt_type]


def test_shadow_read_through_io_uring_raises_the_sensitive_file_rule(mon: RunningMonitor) -> None:
    benign = uring("openat", "/etc/os-release")
    bad = uring("openat", "/etc/shadow")
    assert bad["res"] >= 0 and bad["read"] > 0, bad  # it really read the file
    a = wait_alert(mon, SHADOW_RULE, lambda a: a["process"]["pid"] == bad["pid"])
    ev = a["event"]
    assert (ev["evt.type"], ev["fd.name"], ev["fd.num"], ev["evt.rawres"]) == ("openat", "/etc/shadow",
                                                                          bad["res"], bad["res"])
    assert ev["evt.is_io_uring"] is True and ev["evt.io_uring_op"] == "IORING_OP_OPENAT"
    assert ev["evt.io_uring_res_known"] is True and ev["fd.is_resolved"] is True
    assert ev["proc.name"] == "python" or ev["proc.name"] == Path(sys.executable).name[:15]
    # No syscall opened it: every record of /etc/shadow from that process came from the ring.
    # (The record file is written by another thread than the alerts: wait for it.)
    mon.wait_for(lambda e: e["proc.pid"] == bad["pid"] and e.get("fd.name") == "/etc/shadow")
    os_release = mon.wait_for(lambda e: e["proc.pid"] == benign["pid"] and e["evt.type"] == "openat"
                              and e.get("fd.nameraw") == "/etc/os-release")
    shadow = [e for e in events_of(mon, bad["pid"], "openat") if e.get("fd.name") == "/etc/shadow"]
    assert shadow and all(e["evt.is_io_uring"] for e in shadow)
    assert not alerts_of(mon, benign["pid"]), alerts_of(mon, benign["pid"])
    # Judged, and quiet: /etc/os-release is a link, the ring opened /usr/lib/os-release.
    assert os_release["evt.is_io_uring"] is True
    assert os_release["fd.name"] == os.path.realpath("/etc/os-release")
    setup = events_of(mon, bad["pid"], "io_uring_setup")
    assert len(setup) == 1 and setup[0]["evt.arg.entries"] == 4 and setup[0]["fd.num"] >= 0


def test_openat2_through_a_symlink_is_judged_by_the_file_opened(
        mon: RunningMonitor, private_dir: Path) -> None:
    """The path given (a link in a directory no rule names) is one the kernel's open filter
    drops; the file the ring opened is /etc/shadow: the filter keeps it, the rule fires."""
    loaded = mon.wait_log("open_path_filter")
    assert loaded["prefixes"] and not any(str(private_dir).startswith(p) for p in loaded["prefixes"])
    plain = private_dir / "plain.txt"
    plain.write_text("nothing\n")
    link = private_dir / "innocent"
    link.symlink_to("/etc/shadow")
    quiet = uring("openat2", str(plain))
    bad = uring("openat2", str(link))
    a = wait_alert(mon, SHADOW_RULE, lambda a: a["process"]["pid"] == bad["pid"])
    ev = a["event"]
    assert (ev["evt.type"], ev["fd.name"], ev["fd.nameraw"]) == ("openat2", "/etc/shadow", str(link))
    assert ev["evt.io_uring_op"] == "IORING_OP_OPENAT2" and ev["fd.is_resolved"] is True
    # The plain file's open was dropped in the kernel (its ring setup was recorded).
    mon.wait_for(lambda e: e["proc.pid"] == bad["pid"] and e.get("fd.nameraw") == str(link))
    assert events_of(mon, quiet["pid"], "io_uring_setup")
    assert not [e for e in events_of(mon, quiet["pid"], "openat2") if e.get("fd.nameraw") == str(plain)]


def test_relative_open_through_a_dirfd(mon: RunningMonitor) -> None:
    bad = uring("openat", "shadow", "--relative-to", "/etc")
    a = wait_alert(mon, SHADOW_RULE, lambda a: a["process"]["pid"] == bad["pid"])
    assert (a["event"]["fd.name"], a["event"]["fd.nameraw"]) == ("/etc/shadow", "shadow")
    assert a["event"]["evt.arg.dirfd"] >= 0 and a["event"]["fd.relative"] is True


def test_skip_success_request_is_recorded_at_submission(mon: RunningMonitor) -> None:
    """IOSQE_CQE_SKIP_SUCCESS: a successful open posts no completion at all."""
    bad = uring("openat", "/etc/shadow", "--skip-success")
    assert bad["res"] is None  # nothing was posted
    a = wait_alert(mon, SHADOW_RULE, lambda a: a["process"]["pid"] == bad["pid"])
    assert a["event"]["evt.io_uring_res_known"] is False and a["event"]["fd.name"] == "/etc/shadow"


def test_sqpoll_open_made_by_the_kernel_thread_is_the_process_s(mon: RunningMonitor) -> None:
    """IORING_SETUP_SQPOLL: a kernel thread of the process submits; the process only waits."""
    bad = uring("openat", "/etc/shadow", "--sqpoll")
    assert bad["res"] >= 0 and bad["read"] > 0, bad
    a = wait_alert(mon, SHADOW_RULE, lambda a: a["process"]["pid"] == bad["pid"])
    ev = a["event"]
    assert ev["evt.is_io_uring"] is True and ev["fd.name"] == "/etc/shadow"
    # The submitting thread is the poller (its tid and name), in the process's lineage.
    assert ev["proc.tid"] != bad["pid"] and ev["proc.name"].startswith("iou-sqp")
    assert ev["proc.exepath"] == os.path.realpath(sys.executable)
    setup = mon.wait_for(lambda e: e["proc.pid"] == bad["pid"] and e["evt.type"] == "io_uring_setup")
    assert "IORING_SETUP_SQPOLL" in setup["evt.arg.flags"].split("|")


def test_connect_through_io_uring_is_recorded_with_its_peer(mon: RunningMonitor) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    try:
        ok = uring("connect", "127.0.0.1", str(port))
    finally:
        srv.close()
    refused = uring("connect", "127.0.0.1", str(port))  # nobody listens now
    assert (ok["res"], refused["res"]) == (0, -111)
    for report, res in ((ok, 0), (refused, -111)):
        ev = mon.wait_for(lambda e, pid=report["pid"]: e["evt.type"] == "connect" and e["proc.pid"] == pid
                          and e.get("evt.is_io_uring") is True, timeout=60)
        assert (ev["fd.rip"], ev["fd.rport"], ev["fd.sip"], ev["fd.sport"]) == ("127.0.0.1", port,
                                                                              "127.0.0.1", port)
        assert (ev["fd.name"], ev["fd.type"], ev["evt.rawres"]) == (f"127.0.0.1:{port}", "ipv4", res)
        assert ev["evt.io_uring_op"] == "IORING_OP_CONNECT" and ev["evt.arg.fd"] >= 0
        assert not [e for e in events_of(mon, report["pid"], "connect") if not e["evt.is_io_uring"]]
