"""Floods on the running kernel: lanes, coalescing, throttling and exact accounting.

Every load generator runs in a scratch cgroup the monitor is restricted to
(sensor.cgroups), so the rest of the machine is neither traced nor flooded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel_util import scratch_cgroup
from tests.monitor_proc import RunningMonitor

pytestmark = pytest.mark.kernel

# Joins the cgroup, says so, waits for "go", runs MODE for SECONDS, says "done", waits.
FLOOD = r"""
import os, sys, time
cg, mode, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(os.path.join(cg, "cgroup.procs"), "w") as fh:
    fh.write(str(os.getpid()))
sys.stdout.write("in\n"); sys.stdout.flush()
sys.stdin.readline()
n = 0
end = time.monotonic() + secs
if mode == "distinct":   # every open a different path: nothing to coalesce
    while time.monotonic() < end:
        for _ in range(500):
            try:
                os.open(f"/etc/rw-flood-{n}", os.O_RDONLY)
            except FileNotFoundError:
                pass
            n += 1
elif mode == "same":     # the same open again and again
    count = int(secs)
    for _ in range(count):
        os.close(os.open("/etc/passwd", os.O_RDONLY))
    n = count
sys.stdout.write(f"done {n}\n"); sys.stdout.flush()
sys.stdin.readline()
"""

# Joins the cgroup, then execs /bin/true N times at a steady pace, each with a marker.
PACED_EXECS = r"""
import os, subprocess, sys, time
cg, mark, n, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with open(os.path.join(cg, "cgroup.procs"), "w") as fh:
    fh.write(str(os.getpid()))
for i in range(n):
    subprocess.run(["/bin/true", mark, str(i)], check=True)
    time.sleep(gap)
"""


class Flood:
    """A flood process in the cgroup, started and stopped by hand."""

    def __init__(self, cg: Path, mode: str, arg: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FLOOD, str(cg), mode, str(arg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        assert self.proc.stdout.readline() == "in\n"
        self.pid = self.proc.pid
        self.count = 0

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> int:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline().split()
        assert line[0] == "done", line
        self.count = int(line[1])
        self.proc.stdin.write("exit\n")
        self.proc.stdin.flush()
        self.proc.wait(30)
        return self.count


def _config(tmp_path: Path, cg: Path, **sensor: Any) -> dict[str, Any]:
    return {
        "sensor": {"cgroups": [str(cg)], "extra_event_types": ["openat"], **sensor},
        "lineage": {"bpffs_dir": _pin_dir(cg)},
    }


def _pin_dir(cg: Path) -> str:
    return f"/sys/fs/bpf/{cg.name}"


@pytest.fixture
def cg() -> Iterator[Path]:
    with scratch_cgroup(f"flood-{uuid.uuid4().hex[:6]}") as path:
        try:
            yield path
        finally:
            # The pinned lineage map outlives the monitor by design: not this test's.
            shutil.rmtree(_pin_dir(path), ignore_errors=True)


def _alerts(mon: RunningMonitor) -> list[dict[str, Any]]:
    out = []
    for line in mon.stdout_path.read_text().splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "rule" in rec:
                out.append(rec)
    return out


def _assert_identity(lanes: dict[str, Any]) -> None:
    for lane in ("process", "syscall"):
        c = lanes[lane]
        assert c["delivered"] + c["coalesced"] + c["throttled"] + c["lost"] == c["produced"], (lane, c)


def test_flood_beside_paced_execs_loses_no_process_record(tmp_path: Path, cg: Path) -> None:
    """No coalescing, no throttling, a tiny syscall lane: the flood overflows it, and
    still every exec, fork and exit of a paced stream beside it arrives."""
    cfg = _config(tmp_path, cg, ringbuf_bytes=65536, coalesce_window_ms=0,
                  throttle_process_rate=0, throttle_cgroup_rate=0)
    mark = f"rw-{uuid.uuid4().hex[:10]}"
    n_exec = 60
    with RunningMonitor(tmp_path, cfg) as mon:
        floods = [Flood(cg, "distinct", 6) for _ in range(2)]
        for f in floods:
            f.go()
        paced = subprocess.run([sys.executable, "-c", PACED_EXECS, str(cg), mark, str(n_exec), "0.05"],
                               check=True, timeout=60)
        del paced
        for f in floods:
            f.finish()
        time.sleep(1)
        assert mon.stop() == 0
        lanes = mon.wait_log("lanes")
        events = mon.events()
    execs = [e for e in events if e["evt.type"] == "execve" and mark in e.get("proc.argv", [])]
    assert sorted(int(e["proc.argv"][2]) for e in execs) == list(range(n_exec))
    pids = {e["proc.pid"] for e in execs}
    assert pids <= {e["proc.pid"] for e in events if e["evt.type"] == "fork"}
    assert pids <= {e["proc.pid"] for e in events if e["evt.type"] == "exit"}
    # The flood really overloaded its lane, and the process lane lost nothing.
    assert lanes["syscall"]["lost"] > 0, lanes["syscall"]
    assert lanes["process"]["lost"] == 0, lanes["process"]
    assert lanes["process"]["produced"] >= 3 * n_exec
    _assert_identity(lanes)
    # delivered as the kernel counts it is what the records file holds.
    assert lanes["syscall"]["delivered"] == sum(
        1 for e in events if e["evt.type"] == "openat" and not e["evt.count_only"])


def test_coalesced_counts_add_up_and_rules_see_the_event_once(tmp_path: Path, cg: Path) -> None:
    """N identical opens become a handful of records whose evt.count sums to N exactly;
    the rule that matches them alerts once; distinct events in between all arrive."""
    n = 20000
    cfg = _config(tmp_path, cg, coalesce_window_ms=60000)
    with RunningMonitor(tmp_path, cfg) as mon:
        same = Flood(cg, "same", n)
        shadow = subprocess.Popen([sys.executable, "-c", r"""
import os, sys
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as fh:
    fh.write(str(os.getpid()))
for i in range(500):
    os.close(os.open("/etc/shadow", os.O_RDONLY))
for i in range(20):
    try:
        os.open(f"/etc/rw-distinct-{i}", os.O_RDONLY)
    except FileNotFoundError:
        pass
""", str(cg)])
        same.go()
        same.finish()
        assert shadow.wait(30) == 0
        time.sleep(0.5)
        assert mon.stop() == 0
        lanes = mon.wait_log("lanes")
        events = mon.events()
        alerts = _alerts(mon)
    mine = [e for e in events if e["proc.pid"] == same.pid and e.get("fd.name") == "/etc/passwd"]
    assert sum(e["evt.count"] for e in mine) == n
    # With a window longer than the test: one record at once, the rest in a tail.
    assert len(mine) <= 3, [(e["evt.count"], e["evt.count_only"]) for e in mine]
    assert mine[0]["evt.count"] == 1 and not mine[0]["evt.count_only"]
    assert all(e["evt.first_ts"] <= e["evt.last_ts"] == e["evt.ts"] for e in mine)
    shadows = [e for e in events if e["proc.pid"] == shadow.pid and e.get("fd.name") == "/etc/shadow"]
    assert sum(e["evt.count"] for e in shadows) == 500
    hits = [a for a in alerts if a["rule"] == "Read sensitive file untrusted"
            and a["output_fields"].get("proc.pid", a["event"].get("proc.pid")) == shadow.pid]
    assert len(hits) == 1, len(hits)
    distinct = sorted(e["fd.name"] for e in events if e["proc.pid"] == shadow.pid
                      and e.get("fd.name", "").startswith("/etc/rw-distinct-"))
    assert distinct == sorted(f"/etc/rw-distinct-{i}" for i in range(20))
    assert lanes["syscall"]["coalesced"] >= n - 3 + 500 - 3
    _assert_identity(lanes)


def test_throttling_names_the_flooding_process(tmp_path: Path, cg: Path) -> None:
    """A process over its budget is throttled, counted by pid, and named in one alert
    with its command line and lineage; a quiet process beside it is not throttled."""
    cfg = _config(tmp_path, cg, throttle_process_rate=500, throttle_process_burst=500,
                  throttle_cgroup_rate=0, throttle_notice_interval_s=1)
    with RunningMonitor(tmp_path, cfg) as mon:
        flood = Flood(cg, "distinct", 3)
        quiet = subprocess.Popen([sys.executable, "-c", r"""
import os, sys, time
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as fh:
    fh.write(str(os.getpid()))
for i in range(30):
    try:
        os.open(f"/etc/rw-quiet-{i}", os.O_RDONLY)
    except FileNotFoundError:
        pass
    time.sleep(0.1)
""", str(cg)])
        flood.go()
        flood.finish()
        assert quiet.wait(30) == 0
        time.sleep(0.5)
        assert mon.stop() == 0
        lanes = mon.wait_log("lanes")
        events = mon.events()
        alerts = _alerts(mon)
    throttle_alerts = [a for a in alerts if a["rule"] == "ringwatch: syscall flood throttled"]
    # Several throttle records (one a second), one alert: the rest are rate-limited.
    assert len(throttle_alerts) == 1, throttle_alerts
    a = throttle_alerts[0]
    f = a["output_fields"]
    assert f["proc.pid"] == flood.pid
    assert f["throttle.scope"] == "process"
    assert "rw-flood" not in f["proc.cmdline"] and f["proc.cmdline"].startswith("python")
    assert f["proc.exepath"] == os.path.realpath(sys.executable)
    assert f["proc.apid"][:2] == [flood.pid, os.getpid()]
    assert f"pid {flood.pid}" in a["output"]
    notices = [e for e in events if e["evt.type"] == "throttle"]
    assert notices and {e["proc.pid"] for e in notices} == {flood.pid}
    by_pid = lanes["throttled_by"]["by_pid"]
    assert set(by_pid) == {str(flood.pid)}
    assert by_pid[str(flood.pid)] == lanes["syscall"]["throttled"] > 0
    quiet_opens = [e for e in events
                   if e["proc.pid"] == quiet.pid and e.get("fd.name", "").startswith("/etc/rw-quiet-")]
    assert len(quiet_opens) == 30
    _assert_identity(lanes)


def test_cgroup_budget_throttles_a_flood_of_many_processes(tmp_path: Path, cg: Path) -> None:
    """Two processes each under any per-process budget, over their cgroup's together."""
    cfg = _config(tmp_path, cg, throttle_process_rate=0, throttle_cgroup_rate=300,
                  throttle_cgroup_burst=300)
    with RunningMonitor(tmp_path, cfg) as mon:
        floods = [Flood(cg, "distinct", 2) for _ in range(2)]
        for f in floods:
            f.go()
        for f in floods:
            f.finish()
        time.sleep(0.5)
        assert mon.stop() == 0
        lanes = mon.wait_log("lanes")
        events = mon.events()
    notices = [e for e in events if e["evt.type"] == "throttle"]
    assert notices and {e["throttle.scope"] for e in notices} == {"cgroup"}
    cgroup_id = os.stat(cg).st_ino
    assert {e["cgroup.id"] for e in notices} == {cgroup_id}
    by = lanes["throttled_by"]
    assert set(by["by_cgroup"]) == {str(cgroup_id)}
    assert by["by_cgroup"][str(cgroup_id)] == lanes["syscall"]["throttled"] > 0, (by, lanes["syscall"])
    assert set(by["by_pid"]) == {str(f.pid) for f in floods}, (by, [f.pid for f in floods])
    assert sum(by["by_pid"].values()) == lanes["syscall"]["throttled"], (by, lanes["syscall"])
    _assert_identity(lanes)
