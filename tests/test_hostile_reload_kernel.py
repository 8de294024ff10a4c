"""A running `ringwatch run` given hostile rules on SIGHUP: it logs the problem and keeps its rules."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from pathlib import Path

import pytest

from monitor.service.control import request
from tests.monitor_proc import RunningMonitor
from tests.test_rules_limits import macro_bomb
from tests.test_rules_reload_kernel import alert_for, rule, run_exe, wait_logs

pytestmark = pytest.mark.kernel


def _monitor(tmp_path: Path, rules: Path, tag: str) -> RunningMonitor:
    return RunningMonitor(
        tmp_path / "mon",
        config={"lineage": {"bpffs_dir": f"/sys/fs/bpf/rw-hostile-{tag}"}},
        args=["--no-default-rules", "--rules", str(rules)],
        env={"RINGWATCH_RULES_D": "/nonexistent/rules.d"},
    )


@pytest.fixture()
def tag() -> object:
    tag = uuid.uuid4().hex[:6]
    yield tag
    shutil.rmtree(f"/sys/fs/bpf/rw-hostile-{tag}", ignore_errors=True)


def test_sighup_with_a_control_character_keeps_the_daemon_and_its_rules(tmp_path: Path, tag: str) -> None:
    assert os.geteuid() == 0, "kernel tests need root"
    comm = f"rwh{tag}"
    exe = tmp_path / comm
    shutil.copy("/bin/true", exe)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rule("Rule A", comm))
    with _monitor(tmp_path, rules, tag) as mon:
        assert wait_logs(mon, "rules_loaded", 1)["rules"] == 1
        # ESC inside a quoted desc: PyYAML's reader refuses it before parsing anything.
        rules.write_text(rule("Rule B", comm) + '  desc: "colour \x1b[31m red"\n')
        assert mon.proc is not None
        mon.proc.send_signal(signal.SIGHUP)
        failed = wait_logs(mon, "rules_reload_failed", 1)
        assert failed["kept_rules"] == 1
        assert failed["errors"] == [
            f"{rules}:5:17: invalid YAML: control character #x001b is not allowed in YAML (even quoted); "
            'write it as an escape in a double-quoted string, e.g. "\\x1b"'
        ]
        run_exe(exe)
        assert alert_for(mon, "Rule A", exe)["output"] == f"Rule A ran {exe} as root"
        assert mon.stop() == 0


def test_a_reload_stuck_on_its_rules_file_does_not_stop_the_daemon(tmp_path: Path, tag: str) -> None:
    """The reload reads a FIFO that nobody writes yet: only a load off the main loop can
    keep answering `stats` and alerting meanwhile (a slow compile is the same case)."""
    assert os.geteuid() == 0, "kernel tests need root"
    comm_a, comm_b = f"rwa{tag}", f"rwb{tag}"
    exe_a, exe_b = tmp_path / comm_a, tmp_path / comm_b
    shutil.copy("/bin/true", exe_a)
    shutil.copy("/bin/true", exe_b)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rule("Rule A", comm_a))
    with _monitor(tmp_path, rules, tag) as mon:
        assert wait_logs(mon, "rules_loaded", 1)["rules"] == 1
        rules.unlink()
        os.mkfifo(rules, 0o644)
        assert mon.proc is not None
        mon.proc.send_signal(signal.SIGHUP)
        wait_logs(mon, "rules_reload_started", 1)
        # The loader is blocked in open(); the main loop answers and still alerts.
        snap = request(mon.control_socket, "stats", timeout=10)
        assert snap["rules"]["Rule A"]["errors"] == 0
        run_exe(exe_a)
        alert_for(mon, "Rule A", exe_a)
        assert not any(e.get("event") == "rules_reloaded" for e in mon.logs())
        with open(rules, "w") as fifo:  # the loader reads this and compiles it
            fifo.write(rule("Rule B", comm_b))
        assert wait_logs(mon, "rules_reloaded", 1)["rules"] == 1
        run_exe(exe_b)
        alert_for(mon, "Rule B", exe_b)
        assert mon.stop() == 0


def test_a_macro_bomb_on_sighup_fails_the_reload_naming_the_rule(tmp_path: Path, tag: str) -> None:
    assert os.geteuid() == 0, "kernel tests need root"
    comm = f"rwm{tag}"
    exe = tmp_path / comm
    shutil.copy("/bin/true", exe)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rule("Rule A", comm))
    with _monitor(tmp_path, rules, tag) as mon:
        assert wait_logs(mon, "rules_loaded", 1)["rules"] == 1
        rules.write_text(rule("Rule A", comm) + macro_bomb())
        assert mon.proc is not None
        mon.proc.send_signal(signal.SIGHUP)
        failed = wait_logs(mon, "rules_reload_failed", 1, timeout=60)
        assert failed["kept_rules"] == 1
        assert any("macro 'm13': expands to more than 131072 characters" in e for e in failed["errors"])
        assert failed["errors"][-1].endswith("rule 'boom': uses macro 'm25', which has errors")
        assert request(mon.control_socket, "stats", timeout=10)["rules"]["Rule A"]["errors"] == 0
        run_exe(exe)
        alert_for(mon, "Rule A", exe)
        assert mon.stop() == 0
