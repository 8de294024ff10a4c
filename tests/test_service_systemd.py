"""The installed unit under a real systemd (a systemd-nspawn container of the host's root).

One boot for the module; the tests run in file order on the same service: first start on
a pin directory that does not exist yet, notify readiness, an alert in the journal, a
rejected reload, restart, kill -9, stop, a config error that must not loop, and the
unit's exposure score. tests/systemd_container.py says how the container is made.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.kernel.bpffs import PinnedMap
from tests.kafka_broker import tansu_binary
from tests.systemd_container import SystemdContainer

pytestmark = pytest.mark.kernel

UNIT = "ringwatch"
CONFIG = Path("etc/ringwatch/config.yaml")
RULES_D = Path("etc/ringwatch/rules.d")
# systemd-analyze security's score for the unit as shipped before this test existed.
MAX_EXPOSURE = 4.5


class Service:
    """The container and what the tests share: the pin directory, a marker for the rule."""

    def __init__(self, box: SystemdContainer, pin_dir: Path, comm: str) -> None:
        self.box = box
        self.pin_dir = pin_dir
        self.comm = comm

    def path(self, rel: Path) -> Path:
        return self.box.root / rel

    def state(self) -> dict[str, str]:
        return self.box.show(UNIT, "ActiveState", "SubState", "MainPID", "StatusText", "StatusErrno",
                             "NRestarts", "Result", "ExecMainCode", "ExecMainStatus")

    def logs(self) -> list[dict[str, Any]]:
        """The daemon's own JSON log lines, each with the journal's PRIORITY added."""
        out = []
        for entry in self.box.journal("-u", UNIT):
            msg = entry.get("MESSAGE")
            if entry.get("SYSLOG_IDENTIFIER") == "ringwatch" and isinstance(msg, str) and msg.startswith("{"):
                try:
                    line = json.loads(msg)
                except json.JSONDecodeError:
                    continue
                if isinstance(line, dict) and "event" in line and "level" in line:
                    line["_priority"] = entry["PRIORITY"]
                    line["_pid"] = entry.get("_PID")
                    out.append(line)
        return out

    def manager(self) -> list[str]:
        """What systemd itself logged about the unit."""
        return [str(e.get("MESSAGE", "")) for e in self.box.journal("-u", UNIT)
                if e.get("SYSLOG_IDENTIFIER") == "systemd"]


def wait(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    for tool in ("systemd-nspawn", "nsenter", "unshare"):
        assert shutil.which(tool), f"{tool} missing: scripts/setup.sh --test installs systemd-container"
    # bpffs is the host's: a directory of this run's own, which must not exist yet.
    pin_dir = Path(f"/sys/fs/bpf/rw-systemd-test-{uuid.uuid4().hex[:8]}")
    box = SystemdContainer(tmp_path_factory.mktemp("nspawn"))
    try:
        box.boot()
        config = box.root / CONFIG
        config.write_text(config.read_text().replace("bpffs_dir: /sys/fs/bpf/ringwatch\n",
                                                     f"bpffs_dir: {pin_dir}\n"))
        assert f"bpffs_dir: {pin_dir}\n" in config.read_text()
        yield Service(box, pin_dir, f"rwsd{uuid.uuid4().hex[:8]}")
    finally:
        box.close()
        shutil.rmtree(pin_dir, ignore_errors=True)


def test_first_start_on_a_clean_pin_directory(svc: Service) -> None:
    assert not svc.pin_dir.exists()
    # Type=notify: start returns once READY=1 came, i.e. with the programs attached.
    started = svc.box.run("systemctl", "start", UNIT, check=False, timeout=240)
    assert started.returncode == 0, started.stderr + "\n".join(str(e) for e in svc.logs()[-10:])
    st = svc.state()
    assert st["ActiveState"] == "active" and st["SubState"] == "running", st
    assert st["StatusText"].startswith(("monitoring", "watching")), st
    assert (svc.pin_dir / "procs").exists(), "the lineage map was pinned in the new directory"
    # journald reads the stdout stream on its own time, apart from the notify socket: a
    # line written before READY=1 may be indexed after `systemctl start` returned.
    def logs_with_ready() -> list[dict[str, Any]] | None:
        found = svc.logs()
        return found if any(e["event"] == "ready" for e in found) else None

    logs = wait("the ready log line", logs_with_ready, timeout=30)
    lineage = [e for e in logs if e["event"] == "lineage_map"]
    assert lineage and lineage[-1]["reopened"] is False and lineage[-1]["pin"] == str(svc.pin_dir / "procs")
    # The status line shows in `systemctl status`.
    status = svc.box.run("systemctl", "status", "--no-pager", UNIT, check=False).stdout
    assert 'Status: "monitoring' in status or 'Status: "watching' in status, status


def test_installed_service_finds_its_lsm_programs(svc: Service) -> None:
    res = svc.box.run("/opt/ringwatch/bin/python", "-c",
                      "import monitor.enforce.enforcer as e; print(e.LSM_SOURCE)")
    lsm = Path(res.stdout.strip())
    assert lsm == Path("/opt/ringwatch/share/ringwatch/bpf/lsm.bpf.c")
    assert (svc.box.root / lsm.relative_to("/")).is_file()


def test_an_alert_reaches_the_journal_with_its_priority_and_fields(svc: Service) -> None:
    (svc.path(RULES_D) / "test.yaml").write_text(
        f"- rule: systemd test marker\n"
        f'  condition: evt.type == "execve" and proc.name == "{svc.comm}"\n'
        f'  output: "marker %proc.exe ran"\n'
        f"  priority: WARNING\n")
    assert svc.box.run("systemctl", "reload", UNIT, check=False).returncode == 0
    exe = f"/tmp/{svc.comm}"
    svc.box.run("cp", "/bin/true", exe)
    svc.box.run(exe)

    def alert() -> dict[str, Any] | None:
        for e in svc.box.journal("-u", UNIT, "RINGWATCH_RULE=systemd test marker"):
            return e
        return None

    entry = wait("the alert in the journal", alert)
    assert entry["PRIORITY"] == "4"  # WARNING
    assert entry["RINGWATCH_PROC_EXE"] == exe
    assert entry["RINGWATCH_PROC_NAME"] == svc.comm
    assert json.loads(entry["RINGWATCH_JSON"])["rule"] == "systemd test marker"
    # The daemon's own lines: each at the priority of its level.
    levels = {e["level"]: e["_priority"] for e in svc.logs()}
    assert levels.get("info") == "6", levels


def _children(svc: Service, pid: int) -> dict[int, tuple[str, str]]:
    """The children of `pid` in the container: command line, and their cgroup file."""
    out = {}
    for child in svc.box.run("ps", "--ppid", str(pid), "-o", "pid=", check=False).stdout.split():
        cmd = svc.box.run("cat", f"/proc/{child}/cmdline", check=False)
        cgroup = svc.box.run("cat", f"/proc/{child}/cgroup", check=False)
        if cmd.returncode == 0:
            out[int(child)] = (cmd.stdout.replace("\0", " ").strip(), cgroup.stdout)
    return out


def test_kafka_output_runs_in_a_worker_the_unit_stops_cleanly(svc: Service) -> None:
    # The Kafka client runs in a child process (monitor/sinks/kafkaproc.py): under the
    # unit's sandbox it must start, deliver, and stop within the unit's stop, without
    # being killed (KillMode=mixed kills what is left once ringwatch has exited).
    # Copied in: the container may not see the checkout (a fresh clone under /tmp).
    tansu = svc.box.put(tansu_binary(), "/opt/rw-test/tansu")
    port = "19092"
    svc.box.run("systemd-run", "--unit=rw-tansu", "--collect", tansu, "broker",
                "--listener-url", f"tcp://127.0.0.1:{port}", "--advertised-listener-url",
                f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/")
    wait("the broker", lambda: svc.box.run("bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}",
                                           check=False).returncode == 0)
    config = svc.path(CONFIG)
    good = config.read_text()
    cfg = yaml.safe_load(good)
    cfg["outputs"]["alerts"]["kafka_topic"] = "rw-alerts"
    cfg["outputs"]["kafka"] = {**(cfg["outputs"].get("kafka") or {}),
                               "bootstrap_servers": [f"127.0.0.1:{port}"]}
    config.write_text(yaml.safe_dump(cfg))
    try:
        started = svc.box.run("systemctl", "restart", UNIT, check=False, timeout=240)
        assert started.returncode == 0, "\n".join(str(e) for e in svc.logs()[-10:])
        main = int(svc.state()["MainPID"])

        def worker_up() -> dict[int, tuple[str, str]] | None:
            procs = _children(svc, main)
            return procs if any("monitor.sinks.kafkaworker" in c for c, _ in procs.values()) else None

        procs = wait("ringwatch's Kafka worker", worker_up)
        workers = [pid for pid, (cmd, _) in procs.items() if "monitor.sinks.kafkaworker" in cmd]
        assert len(workers) == 1, procs
        assert f"/{UNIT}.service" in procs[workers[0]][1], procs  # in the unit's cgroup
        exe = f"/tmp/{svc.comm}"
        svc.box.run(exe)  # the marker rule of the journal test above alerts on it
        said_before = len(svc.manager())
        svc.box.run("systemctl", "stop", UNIT, timeout=60)
        st = svc.state()
        assert st["ActiveState"] == "inactive" and st["Result"] == "success", st
        closed = [e for e in svc.logs() if e["event"] == "outputs_closed"][-1]["outputs"]["kafka-alerts"]
        assert closed["written"] >= 1 and closed["dropped"] == 0 and closed["worker_restarts"] == 0, closed
        # The worker stopped when ringwatch closed its pipe, not by the final SIGKILL.
        said = svc.manager()[said_before:]
        assert not any("SIGKILL" in m for m in said), said
        failed = [e for e in svc.logs() if e["event"].startswith("kafka worker")]
        assert failed == [], failed
    finally:
        config.write_text(good)
        svc.box.run("systemctl", "stop", "rw-tansu", check=False)
        assert svc.box.run("systemctl", "start", UNIT, check=False, timeout=240).returncode == 0


def test_a_rejected_rules_reload_keeps_the_service_up_and_is_reported_failed(svc: Service) -> None:
    broken = svc.path(RULES_D) / "broken.yaml"
    broken.write_text("- rule: broken\n  condition: proc.nmae == \"x\"\n  output: x\n  priority: INFO\n")
    main_pid = svc.state()["MainPID"]
    reloaded_logs = sum(1 for e in svc.logs() if e["event"] == "reloaded")
    reload = svc.box.run("systemctl", "reload", UNIT, check=False)
    assert reload.returncode != 0, "systemctl reload must fail when the rules are rejected"
    st = svc.state()
    assert st["ActiveState"] == "active" and st["MainPID"] == main_pid, st
    assert st["StatusText"].startswith("reload failed"), st
    assert st["StatusErrno"] == "22", st  # EINVAL, from ERRNO= on the notify socket
    assert any(m.startswith("Reload failed") for m in svc.manager()), svc.manager()[-5:]
    # `journalctl -p err` shows the daemon's error, with the file and field.
    errors = svc.box.journal("-u", UNIT, "-p", "err")
    text = "\n".join(str(e.get("MESSAGE", "")) for e in errors)
    assert "rules_reload_failed" in text and "broken.yaml" in text and "proc.nmae" in text, text
    logs = svc.logs()
    assert all(e["_priority"] == "3" for e in logs if e["level"] == "error")
    assert any(e["event"] == "reload_failed" and "proc.nmae" in e["error"] for e in logs)
    assert sum(1 for e in logs if e["event"] == "reloaded") == reloaded_logs, "no 'reloaded' log"
    stats = json.loads(svc.box.run("/opt/ringwatch/bin/ringwatch", "stats", "--json").stdout)
    assert stats["service"]["reload_errors"] == 1, stats["service"]
    assert "proc.nmae" in stats["service"]["last_reload_error"]
    # The previous rules still alert.
    svc.box.run(f"/tmp/{svc.comm}")
    marker = "RINGWATCH_RULE=systemd test marker"
    wait("a second alert", lambda: len(svc.box.journal("-u", UNIT, marker)) >= 2)
    # Fixed: the next reload succeeds, and systemd's error number is cleared.
    broken.unlink()
    assert svc.box.run("systemctl", "reload", UNIT, check=False).returncode == 0
    st = svc.state()
    assert st["StatusText"].startswith("reloaded") and st["StatusErrno"] == "0", st


def test_restart_keeps_the_pinned_lineage_map(svc: Service) -> None:
    with PinnedMap(svc.pin_dir / "procs") as m:
        before = m.info.id
    n_before = sum(1 for e in svc.logs() if e["event"] == "lineage_map")
    svc.box.run("systemctl", "restart", UNIT, timeout=240)
    assert svc.state()["ActiveState"] == "active"
    lineage = [e for e in svc.logs() if e["event"] == "lineage_map"]
    assert len(lineage) == n_before + 1 and lineage[-1]["reopened"] is True, lineage[-1]
    with PinnedMap(svc.pin_dir / "procs") as m:
        assert m.info.id == before, "the same kernel map, not a new one"


def test_kill_9_is_restarted(svc: Service) -> None:
    st = svc.state()
    pid, restarts = st["MainPID"], int(st["NRestarts"])
    svc.box.run("kill", "-9", pid)

    def back() -> dict[str, str] | None:
        now = svc.state()
        ok = now["ActiveState"] == "active" and now["MainPID"] not in ("0", pid)
        return now if ok else None

    now = wait("the restart after kill -9", back, timeout=240)
    assert int(now["NRestarts"]) == restarts + 1, now


def test_stop_is_clean_within_10_s(svc: Service) -> None:
    # systemd enforces the bound: past TimeoutStopSec it SIGKILLs and records a timeout.
    dropin = svc.box.root / "run/systemd/system/ringwatch.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "stop.conf").write_text("[Service]\nTimeoutStopSec=10\n")
    svc.box.run("systemctl", "daemon-reload")
    svc.box.run("systemctl", "stop", UNIT, timeout=60)
    st = svc.state()
    assert st["ActiveState"] == "inactive" and st["Result"] == "success", st
    # Result=success: the daemon exited 0 on SIGTERM, before the timeout's SIGKILL.
    assert any(e["event"] == "stopped" for e in svc.logs())
    (dropin / "stop.conf").unlink()
    svc.box.run("systemctl", "daemon-reload")


def test_a_config_error_is_not_restarted_in_a_loop(svc: Service) -> None:
    config = svc.path(CONFIG)
    good = config.read_text()
    assert "  ringbuf_bytes: 33554432\n" in good
    config.write_text(good.replace("  ringbuf_bytes: 33554432\n", "  ringbuf_bytes: lots\n"))
    try:
        restarts = int(svc.state()["NRestarts"])
        assert svc.box.run("systemctl", "start", UNIT, check=False, timeout=120).returncode != 0
        # RestartPreventExitStatus=2: still failed once RestartSec= (5 s) has passed.
        time.sleep(7)
        st = svc.state()
        assert st["ActiveState"] == "failed" and st["ExecMainStatus"] == "2", st
        assert int(st["NRestarts"]) == restarts, st
        # The one-line error is in the journal at error priority.
        errors = "\n".join(str(e.get("MESSAGE", "")) for e in svc.box.journal("-u", UNIT, "-p", "err"))
        assert "sensor.ringbuf_bytes" in errors, errors
    finally:
        config.write_text(good)
        svc.box.run("systemctl", "reset-failed", UNIT, check=False)


def test_exposure_is_not_worse_than_before(svc: Service) -> None:
    out = svc.box.run("systemd-analyze", "security", "--no-pager", UNIT).stdout
    m = re.search(r"Overall exposure level for ringwatch\.service: (\d+\.\d+)", out)
    assert m, out[-2000:]
    assert float(m.group(1)) <= MAX_EXPOSURE, out[-3000:]
