"""The service on the running kernel: sd_notify lifecycle, reload, stats and maps.

The daemon runs with exactly the unit's CapabilityBoundingSet, so these tests also prove
that the capabilities the unit grants are enough to attach and monitor.
"""

from __future__ import annotations

import ctypes as ct
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.service import maps
from tests.monitor_proc import REPO, RunningMonitor

pytestmark = pytest.mark.kernel

UNIT = REPO / "packaging" / "systemd" / "ringwatch.service"


def unit_capabilities() -> list[str]:
    for line in UNIT.read_text().splitlines():
        if line.startswith("CapabilityBoundingSet="):
            return line.split("=", 1)[1].split()
    raise AssertionError(f"{UNIT}: no CapabilityBoundingSet")


class CappedMonitor(RunningMonitor):
    """The daemon under the unit's bounding set: root, but only those capabilities."""

    def command(self) -> list[str]:
        caps = ",".join("+" + c.removeprefix("CAP_").lower() for c in unit_capabilities())
        return ["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all", *super().command()]


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self.name = f"@ringwatch-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())
        self.sock.settimeout(60)

    def next(self) -> dict[str, str]:
        """The next state change, past the periodic STATUS-only summaries."""
        while True:
            raw = self.sock.recv(4096).decode()
            fields = dict(line.split("=", 1) for line in raw.split("\n"))
            if set(fields) != {"STATUS"}:
                return fields

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], cwd=REPO, capture_output=True, text=True, timeout=60,
    )


def stats_json(sock: Path) -> dict[str, Any]:
    proc = cli("stats", "--json", "--control-socket", str(sock))
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _marker() -> str:
    return f"rw-ops-{uuid.uuid4().hex[:12]}"


def test_unit_capabilities_exclude_what_is_not_needed() -> None:
    caps = set(unit_capabilities())
    assert {"CAP_BPF", "CAP_PERFMON"} <= caps
    assert not caps & {"CAP_SYS_RESOURCE", "CAP_DAC_OVERRIDE", "CAP_NET_ADMIN", "CAP_SYS_MODULE"}


def test_service_lifecycle(tmp_path: Path, notify: NotifyListener) -> None:
    flag_sock = Path(f"/tmp/rw-ops-{uuid.uuid4().hex[:8]}.sock")
    mon = CappedMonitor(
        tmp_path, {"drop_alert": {"min_interval_s": 30.0}},
        args=["--control-socket", str(flag_sock)], env={"NOTIFY_SOCKET": notify.name},
    )
    with mon:
        assert mon.proc is not None
        ready = notify.next()
        assert ready["READY"] == "1"
        assert ready["MAINPID"] == str(mon.proc.pid)
        assert "monitoring" in ready["STATUS"]
        # READY=1 only once the programs are attached.
        events = [e["event"] for e in mon.logs()]
        assert "sensor_attached" in events
        assert events.index("sensor_attached") < events.index("ready")

        mark = _marker()
        subprocess.run(["/bin/true", mark], check=True)
        mon.wait_for(lambda e: e.get("evt.type") == "execve" and mark in e.get("proc.argv", []))
        # The flag wins over the config file's control.socket.
        assert not mon.control_socket.exists()
        snap = stats_json(flag_sock)
        assert snap["pid"] == mon.proc.pid
        assert snap["events"]["exec"] >= 1
        assert snap["outputs"]["record"]["written"] >= 1
        assert set(snap["drops"]) >= {"records_lost", "kernel", "userspace", "partial"}
        # Whole-record losses by reason, and the total `ringwatch stats` leads with adds them up.
        kernel, user = snap["drops"]["kernel"], snap["drops"]["userspace"]
        assert set(kernel) == {"ringbuf_full", "pending_full", "exit_no_enter", "syscall_ringbuf_full"}
        assert all(isinstance(v, int) for v in [*kernel.values(), *user.values()])
        assert snap["drops"]["records_lost"] == sum(kernel.values()) + sum(user.values())
        # The kernel counts what it produced before userspace counts it delivered.
        assert snap["produced"]["exec"] >= snap["events"]["exec"]
        # Both lanes' ring buffers: syscall 32 MiB, process 2 MiB by default.
        assert snap["ringbuf"]["bytes"] == 34 * 1024 * 1024
        assert snap["lanes"]["syscall"]["bytes"] == 32 * 1024 * 1024
        assert snap["service"]["notify_socket"] is True
        text = cli("stats", "--control-socket", str(flag_sock))
        assert text.returncode == 0 and "events:\n  exec: " in text.stdout

        # Reload: RELOADING=1, then READY=1; new settings in force.
        mon.config_path.write_text(yaml.safe_dump({"drop_alert": {"min_interval_s": 5}}))
        mon.proc.send_signal(signal.SIGHUP)
        assert notify.next()["RELOADING"] == "1"
        back = notify.next()
        assert back["READY"] == "1" and back["STATUS"].startswith("reloaded")
        svc = stats_json(flag_sock)["service"]
        assert svc["reloads"] == 1 and svc["drop_alert"]["min_interval_s"] == 5.0
        # A kernel-side setting cannot change without a restart: the status says so.
        mon.config_path.write_text(yaml.safe_dump({"drop_alert": {"min_interval_s": 5},
                                                   "sensor": {"ringbuf_bytes": 65536}}))
        mon.proc.send_signal(signal.SIGHUP)
        assert notify.next()["RELOADING"] == "1"
        assert notify.next()["STATUS"].endswith("; restart to apply sensor")
        assert stats_json(flag_sock)["lanes"]["syscall"]["bytes"] == 32 * 1024 * 1024
        # A bad file on reload: the service stays up with the previous settings.
        mon.config_path.write_text("drop_alert:\n  min_interval_s: soon\n")
        mon.proc.send_signal(signal.SIGHUP)
        assert notify.next()["RELOADING"] == "1"
        back = notify.next()
        assert back["READY"] == "1"
        assert "previous config kept" in back["STATUS"] and "drop_alert.min_interval_s" in back["STATUS"]
        svc = stats_json(flag_sock)["service"]
        assert svc["reloads"] == 2 and svc["reload_errors"] == 1
        assert svc["drop_alert"]["min_interval_s"] == 5.0

        assert mon.stop(signal.SIGTERM) == 0
        assert notify.next()["STOPPING"] == "1"
        assert not flag_sock.exists()
        assert mon.wait_log("stopped")


def _bpftool_map(map_id: int) -> dict[str, Any]:
    out = subprocess.run(["bpftool", "-j", "map", "show", "id", str(map_id)],
                         capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def test_stats_and_maps_of_a_running_instance(tmp_path: Path) -> None:
    pin_dir = Path(f"/sys/fs/bpf/rw-ops-test-{uuid.uuid4().hex[:8]}")
    cfg = {"lineage": {"bpffs_dir": str(pin_dir), "max_entries": 4096}}
    try:
        with RunningMonitor(tmp_path, cfg) as mon:
            assert mon.proc is not None
            proc = cli("maps", "--json", "--control-socket", str(mon.control_socket))
            assert proc.returncode == 0, proc.stderr
            rep = json.loads(proc.stdout)
            assert rep["pid"] == mon.proc.pid and rep["pin_dir"] == str(pin_dir)
            by_name = {m["name"]: m for m in rep["maps"]}
            assert {"events", "pending_exec", "drops", "produced"} <= set(by_name)
            assert all(mon.proc.pid in m["pids"] for m in rep["maps"])
            # The ring buffer's size is what stats reports; it has no entries to count.
            snap = stats_json(mon.control_socket)
            assert by_name["events"]["type"] == "ringbuf"
            # Two lanes: the process lane (`events`) and the syscall lane (`syscalls`).
            assert by_name["events"]["max_entries"] == snap["lanes"]["process"]["bytes"]
            assert by_name["syscalls"]["max_entries"] == snap["lanes"]["syscall"]["bytes"]
            lanes_bytes = by_name["events"]["max_entries"] + by_name["syscalls"]["max_entries"]
            assert snap["ringbuf"]["bytes"] == lanes_bytes
            assert by_name["events"]["entries"] is None
            assert by_name["drops"]["entries"] == by_name["drops"]["max_entries"]
            assert isinstance(by_name["pending_exec"]["entries"], int)
            # The lineage map is pinned in the configured directory.
            pinned = [m for m in rep["maps"] if any(p.startswith(f"{pin_dir}/") for p in m["pinned"])]
            assert pinned and pinned[0]["max_entries"] == 4096 and pinned[0]["entries"] > 0
            # Numbers are bpftool's own, and the total is their sum.
            for m in rep["maps"]:
                bt = _bpftool_map(m["id"])
                assert (m["key_size"], m["value_size"], m["max_entries"], m["memlock_bytes"]) == (
                    bt["bytes_key"], bt["bytes_value"], bt["max_entries"], bt["bytes_memlock"])
            assert rep["memlock_total_bytes"] == sum(m["memlock_bytes"] for m in rep["maps"]) > 0
            text = cli("maps", "--control-socket", str(mon.control_socket))
            assert text.returncode == 0
            assert "pending_exec" in text.stdout and "locked memory" in text.stdout
            assert mon.stop() == 0
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)


def test_stats_without_a_daemon_names_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "absent.sock"
    proc = cli("stats", "--control-socket", str(sock))
    assert proc.returncode == 2
    assert f"cannot reach ringwatch at {sock}" in proc.stderr


def _map_id_of_fd(fd: int) -> int:
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("map_id:"):
            return int(line.split()[1])
    raise AssertionError(f"fd {fd} is not a BPF map")


def test_count_entries_walks_a_real_hash_map(root: None) -> None:
    from bcc import BPF

    b = BPF(text="BPF_HASH(counted, u32, u64, 64); BPF_ARRAY(slots, u64, 8);")
    try:
        table = b["counted"]
        for k in (3, 5, 8, 13, 21):
            table[ct.c_uint(k)] = ct.c_ulonglong(k * 2)
        map_id = _map_id_of_fd(table.map_fd)
        assert maps.count_entries(map_id, 4, limit=1000) == 5
        assert maps.count_entries(map_id, 4, limit=3) == 3
        listed = {m["id"]: m for m in maps.bpftool_maps()}
        assert maps.entries_of(listed[map_id]) == 5
        assert maps.entries_of(listed[_map_id_of_fd(b["slots"].map_fd)]) == 8
        assert maps.held_map_ids(os.getpid()) >= {map_id}
    finally:
        b.cleanup()
