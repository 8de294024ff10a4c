"""The sensor on the running kernel: exec, fork and exit records match reality."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.kernel.records import CExec
from tests.kernel_util import cgroup2_root, proc_starttime_ticks, proc_status, scratch_cgroup
from tests.monitor_proc import REPO, SERVICE_PINS, RunningMonitor

pytestmark = pytest.mark.kernel
NOBODY = 65534


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMonitor]:
    assert os.geteuid() == 0, "kernel tests need root"
    with RunningMonitor(tmp_path_factory.mktemp("sensor")) as m:
        yield m
        assert m.stop() == 0


def _marker() -> str:
    return f"rw-{uuid.uuid4().hex[:12]}"


def test_exec_matches_proc(monitor: RunningMonitor) -> None:
    mark = _marker()
    child = subprocess.Popen(["/bin/sleep", "30", mark])
    try:
        ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and mark in e.get("proc.argv", []))
        status = proc_status(child.pid)
        ticks = proc_starttime_ticks(child.pid)
    finally:
        child.kill()
        child.wait()
    assert ev["proc.pid"] == child.pid
    assert ev["proc.ppid"] == os.getpid() == int(status["PPid"])
    assert ev["proc.argv"] == ["/bin/sleep", "30", mark]
    assert ev["proc.exe"] == ev["evt.arg.filename"] == "/bin/sleep"
    assert ev["proc.name"] == "sleep"
    assert ev["proc.cmdline"] == f"sleep 30 {mark}"
    assert ev["user.uid"] == 0 == int(status["Uid"].split()[0])
    assert (ev["evt.res"], ev["evt.rawres"]) == ("SUCCESS", 0)
    assert ev["evt.failed"] is False and ev["evt.errno"] == ""
    assert ev["proc.argv_truncated"] is False
    # start_boottime read at its BTF offset equals what /proc reports, to the tick.
    hz = os.sysconf("SC_CLK_TCK")
    assert ev["proc.start_ns"] * hz // 1_000_000_000 == ticks
    # The wall clock is the monotonic stamp shifted into real time: near now.
    assert abs(ev["evt.ts"] / 1e9 - time.time()) < 60
    assert ev["evt.time"].endswith("Z")


def test_exec_carries_the_cgroup_it_ran_in(monitor: RunningMonitor) -> None:
    """cgroup.id is the cgroup v2 directory's inode, read by the kernel at exec: the child
    moves itself into a fresh cgroup first, so the id cannot be the test's own by chance."""
    with scratch_cgroup("cgid") as cg:
        # sleep must stay alive until its cgroup is read (an extra argv marker would make
        # GNU sleep exit at once): the exec is found by its pid instead.
        child = subprocess.Popen(["/bin/sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec /bin/sleep 30'])
        try:
            ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and e["proc.pid"] == child.pid
                                  and e.get("proc.argv") == ["/bin/sleep", "30"])
            in_cgroup = (cg / "cgroup.procs").read_text().split()
        finally:
            child.kill()
            child.wait()
        cg_inode = os.stat(cg).st_ino
    assert str(child.pid) in in_cgroup
    own = os.stat(cgroup2_root() / Path(f"/proc/{os.getpid()}/cgroup").read_text().split("::")[1].strip()
                  .lstrip("/")).st_ino
    assert cg_inode != own
    assert ev["proc.pid"] == child.pid
    assert ev["cgroup.id"] == cg_inode


def test_proc_duration_is_the_age_of_the_process(monitor: RunningMonitor) -> None:
    """Falco's proc.duration: a shell that waits 1.5 s and then execs is 1.5 s old at the exec."""
    mark = _marker()
    subprocess.run(["/bin/sh", "-c", f"sleep 1.5; exec /bin/echo {mark}"], check=True,
                   stdout=subprocess.DEVNULL)
    ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and mark in e.get("proc.argv", []))
    assert 1.5e9 <= ev["proc.duration"] < 60e9, ev["proc.duration"]


def test_exec_under_non_root_uid(monitor: RunningMonitor) -> None:
    mark = _marker()
    subprocess.run(["/bin/true", mark], user=NOBODY, group=NOBODY, check=True)
    ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and mark in e.get("proc.argv", []))
    assert ev["user.uid"] == NOBODY
    assert ev["group.gid"] == NOBODY
    assert ev["user.name"] == "nobody"
    assert ev["proc.ppid"] == os.getpid()


def test_failed_exec_reports_enoent(monitor: RunningMonitor) -> None:
    missing = f"/nonexistent/{_marker()}"
    with pytest.raises(FileNotFoundError):
        subprocess.run([missing, "arg1"])
    ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and e.get("evt.arg.filename") == missing)
    assert (ev["evt.res"], ev["evt.rawres"]) == ("ENOENT", -2)
    assert ev["evt.failed"] is True
    assert ev["evt.errno"] == "ENOENT"
    assert ev["proc.argv"] == [missing, "arg1"]
    assert ev["proc.ppid"] == os.getpid()


def test_fork_and_exit_with_code_and_signal(monitor: RunningMonitor) -> None:
    code = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
    code.wait()
    killed = subprocess.Popen(["/bin/sleep", "30"])
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    fork = monitor.wait_for(lambda e: e["evt.type"] == "fork" and e["proc.pid"] == code.pid)
    assert fork["proc.ppid"] == os.getpid()
    assert fork["proc.child_pid"] == code.pid
    ex = monitor.wait_for(lambda e: e["evt.type"] == "exit" and e["proc.pid"] == code.pid)
    assert (ex["proc.exit_code"], ex["proc.exit_signal"]) == (7, 0)
    ex = monitor.wait_for(lambda e: e["evt.type"] == "exit" and e["proc.pid"] == killed.pid)
    assert ex["proc.exit_signal"] == signal.SIGKILL


def test_threads_are_not_processes(monitor: RunningMonitor) -> None:
    """A thread's clone is not a fork record, and its exit is not an exit record."""
    code = "import threading; ts=[threading.Thread(target=lambda: None) for _ in range(5)];" \
           "[t.start() for t in ts]; [t.join() for t in ts]"
    p = subprocess.run([sys.executable, "-c", code], check=True)
    del p
    ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and (e.get("proc.argv") or [None])[-1] == code)
    pid = ev["proc.pid"]
    monitor.wait_for(lambda e: e["evt.type"] == "exit" and e["proc.pid"] == pid)
    mine = [e for e in monitor.events() if e["proc.pid"] == pid and e["evt.type"] in ("fork", "exit")]
    assert [e["evt.type"] for e in mine] == ["fork", "exit"]


def test_argv_bounds_set_the_truncated_flag(monitor: RunningMonitor) -> None:
    mark = _marker()
    many = ["/bin/true", mark, *[f"a{i}" for i in range(40)]]
    subprocess.run(many, check=True)
    ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and mark in e.get("proc.argv", []))
    assert ev["proc.argv_truncated"] is True
    assert ev["proc.argv"] == many[:32]

    mark = _marker()
    long_arg = "x" * 300
    subprocess.run(["/bin/true", mark, long_arg], check=True)
    ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and mark in e.get("proc.argv", []))
    assert ev["proc.argv_truncated"] is True
    assert ev["proc.argv"][2] == "x" * 255

    # Exactly at the bound is not a truncation.
    mark = _marker()
    subprocess.run(["/bin/true", mark, "y" * 255], check=True)
    ev = monitor.wait_for(lambda e: e["evt.type"] == "execve" and mark in e.get("proc.argv", []))
    assert ev["proc.argv_truncated"] is False
    assert ev["proc.argv"][2] == "y" * 255


STORM = r"""
import os, sys
cg, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(cg, "cgroup.procs"), "w") as fh:
    fh.write(str(os.getpid()))
sys.stdout.write("in\n"); sys.stdout.flush()
sys.stdin.readline()
for _ in range(n):
    try:
        os.execv("/nonexistent/ringwatch-storm", ["storm"])
    except FileNotFoundError:
        pass
sys.stdout.write("done\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def test_overload_accounting_is_exact(tmp_path: Path) -> None:
    """delivered + dropped == produced, exactly, for a storm far faster than the consumer;
    and per lane: delivered + coalesced + throttled + lost == produced."""
    n = 20000
    with scratch_cgroup("storm") as cg:
        # Execs travel in the process lane: that is the one made small here.
        cfg = {"sensor": {"process_ringbuf_bytes": 4096, "cgroups": [str(cg)]}}
        with RunningMonitor(tmp_path, cfg) as mon:
            storm = subprocess.Popen(
                [sys.executable, "-c", STORM, str(cg), str(n)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            assert storm.stdout is not None and storm.stdin is not None
            assert storm.stdout.readline() == "in\n"
            storm.stdin.write("go\n")
            storm.stdin.flush()
            assert storm.stdout.readline() == "done\n"
            storm.stdin.write("exit\n")
            storm.stdin.flush()
            storm.wait()
            # Let the consumer reach the storm's exit record before stopping.
            time.sleep(1)
            assert mon.stop() == 0
            stopped = mon.wait_log("stopped")
            lanes = mon.wait_log("lanes")
            events = mon.events()
    storm_execs = [e for e in events if e["evt.type"] == "execve" and e["proc.pid"] == storm.pid]
    storm_exits = [e for e in events if e["evt.type"] == "exit" and e["proc.pid"] == storm.pid]
    produced, delivered, drops = stopped["produced"], stopped["delivered"], stopped["drops"]
    # Only the storm process is in the filtered cgroup: n failed execs and its own exit.
    assert produced["exec"] == n
    assert produced["exit"] == 1
    assert produced["fork"] == 0
    assert delivered["exec"] == len(storm_execs)
    assert delivered["exit"] == len(storm_exits)
    lost = drops["ringbuf_full"] + drops["pending_full"] + drops["exit_no_enter"]
    assert delivered["exec"] + delivered["exit"] + lost == n + 1
    assert drops["ringbuf_full"] > 0, "a 4 KiB ring buffer should have overflowed"
    process = lanes["process"]
    assert process["produced"] == n + 1
    assert process["delivered"] + process["lost"] == n + 1
    assert process["lost"] == lost and process["coalesced"] == process["throttled"] == 0
    assert process["fill_hwm_bytes"] <= process["bytes"] == 4096
    syscall = lanes["syscall"]
    assert syscall["delivered"] + syscall["coalesced"] + syscall["throttled"] + syscall["lost"] \
        == syscall["produced"]
    # The fill high-water mark saw at least one exec record waiting, never more than fits.
    assert ctypes.sizeof(CExec) < stopped["ringbuf_fill_hwm_bytes"] <= 4096
    assert delivered["exec"] > 0
    assert all(e["evt.errno"] == "ENOENT" for e in storm_execs)
    # Every event has an id of its own, even thousands a second from one process.
    ids = [e["evt.id"] for e in events]
    assert len(ids) == len(set(ids))


def test_stop_on_sigint_flushes_last_events(tmp_path: Path) -> None:
    mon = RunningMonitor(tmp_path).start()
    mark = _marker()
    subprocess.run(["/bin/true", mark], check=True)
    time.sleep(0.3)
    assert mon.stop(signal.SIGINT) == 0
    assert any(mark in e.get("proc.argv", []) for e in mon.events())
    assert mon.wait_log("stopped")["produced"]["exec"] >= 1


def test_header_fallback_without_btf_warns_and_runs(tmp_path: Path) -> None:
    cfg = {"sensor": {"btf_path": str(tmp_path / "no-btf")}}
    with RunningMonitor(tmp_path, cfg) as mon:
        warn = mon.wait_log("offsets_from_headers")
        assert warn["level"] == "warning"
        assert "compile-time headers" in warn["detail"]
        assert mon.stop() == 0


def _run_cli(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    kw.setdefault("timeout", 120)
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], cwd=REPO, capture_output=True, text=True,
        **kw,  # type: ignore[call-overload]
    )


def test_a_test_monitor_pins_lineage_of_its_own(tmp_path: Path) -> None:
    """Not in /sys/fs/bpf/ringwatch, the installed service's: a test run beside the
    service must not share or rewrite its lineage maps. Unpinned once stopped."""
    had_default = SERVICE_PINS.exists()
    mon = RunningMonitor(tmp_path / "m").start()
    try:
        assert mon.own_pins is not None and mon.own_pins != SERVICE_PINS
        assert (mon.own_pins / "procs").exists()  # the lineage map, pinned where asked
        assert SERVICE_PINS.exists() == had_default
    finally:
        mon.stop()
    assert not mon.own_pins.exists()


@pytest.mark.usefixtures("repo_reachable_by_others")
def test_not_root_is_one_line_and_exit_2() -> None:
    r = _run_cli(["run", "--duration", "1"], user=NOBODY, group=NOBODY)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "needs root" in r.stderr and "Traceback" not in r.stderr


def test_bpffs_missing_is_one_line_and_exit_2() -> None:
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"umount /sys/fs/bpf && exec {sys.executable} -m monitor run --duration 1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "bpffs is not mounted" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sensor:\n  ringbuf_byte: 4096\n")
    r = _run_cli(["run", "--config", str(cfg)])
    assert r.returncode == 2
    assert f"{cfg}: sensor.ringbuf_byte: unknown key" in r.stderr
    assert "Traceback" not in r.stderr


def test_events_on_stdout_can_be_limited_to_types(tmp_path: Path) -> None:
    """`make run` shows every exec (with its parent) beside the alerts, not every syscall."""
    mon = RunningMonitor(tmp_path, {"sensor": {"extra_event_types": ["openat"]}},
                         args=["--events", "execve,execveat"]).start()
    mark = _marker()
    subprocess.run(["/bin/true", mark], check=True)
    open("/etc/hostname").close()
    mon.wait_for(lambda e: mark in e.get("proc.argv", []), path=mon.stdout_path)
    assert mon.stop() == 0
    out = [json.loads(line) for line in mon.stdout_path.read_text().splitlines()]
    events = [e for e in out if "evt.type" in e and "rule" not in e]
    assert {e["evt.type"] for e in events} <= {"execve", "execveat"}
    ev = next(e for e in events if mark in e.get("proc.argv", []))
    assert ev["proc.ppid"] == os.getpid() and ev["proc.pname"]
    # The record file still has everything, openat included.
    assert any(e["evt.type"] == "openat" for e in mon.events())


OPEN_STORM = """
import os, sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for _ in range(1000):
        os.close(os.open("/etc/hostname", os.O_RDONLY))
"""


def test_daemon_answers_during_a_sustained_storm(tmp_path: Path) -> None:
    """A flood faster than the consumer must not starve the main loop: every stats request
    through the storm is answered (each one a fresh snapshot), and a SIGHUP sent in the
    middle of it is acted on while the storm still runs."""
    # Identical opens: without coalescing and throttling they are a storm the lane cannot hold.
    cfg = {"sensor": {"extra_event_types": ["openat"], "ringbuf_bytes": 1 << 20, "coalesce_window_ms": 0,
                      "throttle_process_rate": 0, "throttle_cgroup_rate": 0}}
    with RunningMonitor(tmp_path, cfg) as mon:
        storms = [subprocess.Popen([sys.executable, "-c", OPEN_STORM, "60"]) for _ in range(2)]
        uptimes = []
        try:
            time.sleep(2)  # well into the storm
            for i in range(6):
                r = _run_cli(["stats", "--json", "--control-socket", str(mon.control_socket)], timeout=10)
                assert r.returncode == 0, r.stderr
                snap = json.loads(r.stdout)
                assert snap["ringbuf"]["fill_hwm_bytes"] > 0
                uptimes.append(snap["uptime_s"])
                if i == 2:
                    mon.proc.send_signal(signal.SIGHUP)
                    mon.wait_log("rules_reloaded", timeout=8)
                time.sleep(0.5)
            assert all(s.poll() is None for s in storms), "the storm ended before the checks did"
        finally:
            for s in storms:
                s.kill()
                s.wait()
        assert mon.stop() == 0
        stopped = mon.wait_log("stopped")
        lanes = mon.wait_log("lanes")
    assert uptimes == sorted(uptimes) and len(set(uptimes)) == len(uptimes), uptimes
    # The storm really overran the consumer: records were lost, so the loop was busy.
    lost = sum(stopped["drops"][r] for r in ("ringbuf_full", "pending_full", "exit_no_enter",
                                             "syscall_ringbuf_full"))
    assert lost > 0
    assert sum(stopped["delivered"].values()) + lost == sum(stopped["produced"].values())
    # The storm filled the syscall lane only.
    assert lanes["syscall"]["lost"] == stopped["drops"]["syscall_ringbuf_full"] > 0
    assert lanes["process"]["lost"] == 0
    for c in (lanes["process"], lanes["syscall"]):
        assert c["delivered"] + c["coalesced"] + c["throttled"] + c["lost"] == c["produced"]
