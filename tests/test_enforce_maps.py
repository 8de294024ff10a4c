"""Enforcement maps on the real host kernel, and the host's monitor-only fallback.

The host kernel refuses BPF LSM, so the LSM programs themselves are tested in the guest
(test_enforce_vm.py). Here the sensor compiles bpf/lsm.bpf.c with RW_LSM_MAPS_ONLY
(its maps, not its programs) through the same Extension path the daemon uses, and the
map writer fills, refills and empties the kernel maps, read back from the kernel.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import LineageConfig, SensorConfig
from monitor.enforce.enforcer import LSM_SOURCE, Enforcer
from monitor.enforce.plan import path_key
from monitor.enforce.spec import DenySpec, Hook, Mode, UidOp
from monitor.kernel.sensor import Sensor
from tests.monitor_proc import REPO, RunningMonitor, isolated

pytestmark = pytest.mark.kernel


class _Log:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, **kw: Any) -> None:
        self.entries.append((event, kw))


@pytest.fixture(scope="module")
def maps_only(tmp_path_factory: pytest.TempPathFactory) -> Any:
    assert Path("/sys/fs/bpf").is_dir()
    tmp = tmp_path_factory.mktemp("enforce")
    src = tmp / "lsm_maps_only.bpf.c"
    src.write_text("#define RW_LSM_MAPS_ONLY 1\n" + LSM_SOURCE.read_text())
    log = _Log()
    enforcer = Enforcer(require=True, warn=log, info=log, source_path=src)
    # A private lineage pin directory (on bpffs), so the daemon's own pin is left alone.
    pin = Path("/sys/fs/bpf") / f"rw-test-enforce-{tmp.name}"
    pin.mkdir(exist_ok=True)
    sensor = Sensor(SensorConfig(), lambda rec: None, lineage=LineageConfig(bpffs_dir=str(pin)),
                    extension=enforcer)
    sensor.start()
    yield enforcer, log
    sensor.close()
    for f in pin.iterdir():
        f.unlink()
    pin.rmdir()


EXEC_EVIL = DenySpec("evil", Hook.EXEC, Mode.ENFORCE, paths=("/tmp/evil",))
OPEN_ETC = DenySpec("etc", Hook.OPEN, Mode.AUDIT, prefixes=("/etc/",), uid=(UidOp.NE, 0),
                    except_exes=("/usr/bin/cat",))
NET = DenySpec("net", Hook.CONNECT, Mode.ENFORCE,
               networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")),
               port=443)


def test_loaded_through_the_sensor_extension(root: None, maps_only: Any) -> None:
    enforcer, log = maps_only
    assert enforcer.active
    assert [e for e, _ in log.entries] == ["enforcement_attached"]


def _map_id(bpf_map: Any) -> int:
    """The kernel id of a map this process holds (from /proc, not from ringwatch's code)."""
    for line in Path(f"/proc/self/fdinfo/{bpf_map.map_fd}").read_text().splitlines():
        if line.startswith("map_id:"):
            return int(line.split()[1])
    raise AssertionError("no map_id in fdinfo")


def _bpftool_entries(bpf_map: Any) -> dict[bytes, bytes]:
    """key bytes -> value bytes, as bpftool dumps them from the kernel."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(_map_id(bpf_map))],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return {bytes(int(b, 16) for b in e["key"]): bytes(int(b, 16) for b in e["value"])
            for e in json.loads(out)}


def _u32(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "little") for v in values)


def test_kernel_map_bytes_are_the_documented_layout(root: None, maps_only: Any) -> None:
    """The keys and slot values as the kernel holds them, read by bpftool and compared with
    literal bytes of bpf/lsm.bpf.c's structs (u32 prefixlen in bits, then the path or
    address; u32 n, then up to 8 u32 rule ids): not with the encoder under test."""
    enforcer, _ = maps_only
    enforcer.apply([EXEC_EVIL, OPEN_ETC, NET])
    ids = {name: rid for rid, name in enforcer.plan.names.items()}
    bpf = enforcer.kernel_maps()._bpf  # type: ignore[union-attr]
    pad = 256  # RW_PATH_LEN
    exact = b"/tmp/evil\0"
    assert _bpftool_entries(bpf["deny_exec"]) == {
        _u32(len(exact) * 8) + exact + bytes(pad - len(exact)): _u32(1, ids["evil"]) + bytes(28)}
    assert _bpftool_entries(bpf["deny_open"]) == {
        _u32(5 * 8) + b"/etc/" + bytes(pad - 5): _u32(1, ids["etc"]) + bytes(28)}
    assert _bpftool_entries(bpf["deny_v4"]) == {
        _u32(8) + bytes([10, 0, 0, 0]): _u32(1, ids["net"]) + bytes(28)}
    assert _bpftool_entries(bpf["deny_v6"]) == {
        _u32(8) + bytes([0xFD]) + bytes(15): _u32(1, ids["net"]) + bytes(28)}
    enforcer.apply([])
    assert _bpftool_entries(bpf["deny_exec"]) == {}


def test_fill_read_back_refill_and_empty(root: None, maps_only: Any) -> None:
    enforcer, _ = maps_only
    kmaps = enforcer.kernel_maps()
    enforcer.apply([EXEC_EVIL, OPEN_ETC, NET])
    got = kmaps.read_back()
    ids = {name: rid for rid, name in enforcer.plan.names.items()}
    assert got.exec_keys == {path_key("/tmp/evil", prefix=False): (ids["evil"],)}
    assert got.open_keys == {path_key("/etc/", prefix=True): (ids["etc"],)}
    assert got.v4_keys == {(bytes([10, 0, 0, 0]), 8): (ids["net"],)}
    assert got.v6_keys == {(bytes([0xFD]) + bytes(15), 8): (ids["net"],)}
    assert got.excepts == {(ids["etc"], b"/usr/bin/cat")}
    etc = got.rules[ids["etc"]]
    assert (etc.audit, etc.uid_op, etc.uid, etc.has_except) == (True, 2, 0, True)
    assert got.rules[ids["net"]].port == 443
    assert got.rules[ids["evil"]].audit is False

    # Reload: `evil` goes, a second exec rule comes; the unchanged rules keep their ids.
    other = DenySpec("other", Hook.EXEC, Mode.ENFORCE, prefixes=("/opt/bad/",))
    enforcer.apply([OPEN_ETC, NET, other])
    got2 = kmaps.read_back()
    ids2 = {name: rid for rid, name in enforcer.plan.names.items()}
    assert ids2["etc"] == ids["etc"] and ids2["net"] == ids["net"]
    assert ids2["other"] not in ids.values()
    assert got2.exec_keys == {path_key("/opt/bad/", prefix=True): (ids2["other"],)}
    assert set(got2.rules) == {ids2["etc"], ids2["net"], ids2["other"]}
    assert enforcer.rule_name(ids["evil"]) == "evil"  # records in flight still resolve

    enforcer.apply([])
    empty = kmaps.read_back()
    assert (empty.exec_keys, empty.open_keys, empty.v4_keys, empty.v6_keys) == ({}, {}, {}, {})
    assert empty.rules == {} and empty.excepts == set()


DENY_RULE = """\
- rule: no evil exec
  desc: test
  condition: evt.type == "execve" and proc.exepath == "/tmp/evil"
  output: "denied %fd.name"
  priority: CRITICAL
  action: deny
"""


def test_host_runs_monitor_only_with_one_warning(root: None, tmp_path: Path) -> None:
    rules = tmp_path / "deny.yaml"
    rules.write_text(DENY_RULE)
    mon = RunningMonitor(tmp_path / "mon", {}, args=["--rules", str(rules), "--no-default-rules"])
    with mon:
        warning = mon.wait_log("enforcement_unavailable")
        mon.wait_log("ready")
        # The refused combined compile must not leave its maps behind beside the sensor's.
        out = subprocess.run(
            [sys.executable, "-m", "monitor", "maps", "--json", "--control-socket", str(mon.control_socket)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
        names = [m["name"] for m in json.loads(out)["maps"]]
        assert "events" in names
        assert len(names) == len(set(names)), sorted(names)
        assert mon.stop() == 0
    logs = mon.logs()
    assert [e["event"] for e in logs].count("enforcement_unavailable") == 1
    assert warning["level"] == "warning"
    assert "running monitor-only" in warning["detail"]
    assert "kernel LSMs:" in warning["detail"]
    assert not any(e["event"] == "enforcement_attached" for e in logs)


def _run_private(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A one-shot `ringwatch run` isolated as RunningMonitor's are, and not reading the
    host's config file."""
    config, pins = isolated({}, tmp_path)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    try:
        return subprocess.run(
            [sys.executable, "-m", "monitor", "run", "--config", str(cfg), *args],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )
    finally:
        if pins is not None:
            shutil.rmtree(pins, ignore_errors=True)


def test_require_enforcement_refuses_to_start(root: None, tmp_path: Path) -> None:
    rules = tmp_path / "deny.yaml"
    rules.write_text(DENY_RULE)
    proc = _run_private(tmp_path, "--rules", str(rules), "--no-default-rules",
                        "--require-enforcement", "--duration", "5")
    assert proc.returncode == 2, proc.stderr
    # libbcc's own complaint about the refused load is captured, not printed.
    assert "Failed to load program" not in proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("ringwatch:")]
    assert len(ours) == 1
    assert "enforcement required but unavailable" in ours[0]
    assert not any('"ready"' in line or " ready " in line for line in proc.stderr.splitlines())


def test_untranslatable_deny_rule_stops_start(root: None, tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text(DENY_RULE.replace('proc.exepath == "/tmp/evil"', 'proc.name == "evil"'))
    proc = _run_private(tmp_path, "--rules", str(rules), "--no-default-rules", "--duration", "5")
    assert proc.returncode == 2, proc.stderr
    assert "rule 'no evil exec': cannot be enforced in the kernel: field proc.name" in proc.stderr
    assert f"{rules}:1" in proc.stderr



def test_no_deny_rules_no_lsm_and_reload_adding_one_is_refused(root: None, tmp_path: Path) -> None:
    import signal

    rules = tmp_path / "rules.yaml"
    rules.write_text(DENY_RULE.replace("action: deny", "action: alert"))
    mon = RunningMonitor(tmp_path / "mon", {}, args=["--rules", str(rules), "--no-default-rules"])
    with mon:
        mon.wait_log("enforcement_not_loaded")
        rules.write_text(DENY_RULE)
        assert mon.proc is not None
        mon.proc.send_signal(signal.SIGHUP)
        failed = mon.wait_log("rules_reload_failed")
        assert mon.stop() == 0
    assert "restart ringwatch (or set enforcement.always_load: true)" in failed["errors"][0]
    events = [e["event"] for e in mon.logs()]
    assert "enforcement_unavailable" not in events  # nothing was tried, nothing to warn about
    assert "rules_reloaded" not in events
