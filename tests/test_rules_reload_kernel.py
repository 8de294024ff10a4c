"""A running `ringwatch run` alerts on real execs, and reloads its rules on SIGHUP.

A good new file replaces the rules; a bad one is refused with every error logged and
the previous rules keep alerting.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.monitor_proc import RunningMonitor, read_jsonl

pytestmark = pytest.mark.kernel


def rule(name: str, comm: str) -> str:
    return (
        f"- rule: {name}\n"
        f'  condition: evt.type == "execve" and proc.name == "{comm}"\n'
        f'  output: "{name} ran %proc.exe as %user.name"\n'
        "  priority: NOTICE\n"
    )


def count_logs(mon: RunningMonitor, event: str) -> int:
    return sum(1 for e in mon.logs() if e.get("event") == event)


def wait_logs(mon: RunningMonitor, event: str, n: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in mon.logs() if e.get("event") == event]
        if len(found) >= n:
            return found[n - 1]
        assert mon.proc is not None and mon.proc.poll() is None, mon.stderr_path.read_text()[-3000:]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} {event!r} logs:\n" + mon.stderr_path.read_text()[-3000:])


def run_exe(path: Path) -> None:
    subprocess.run([str(path)], check=True)


def alert_for(mon: RunningMonitor, rule_name: str, exe: Path) -> dict[str, Any]:
    return mon.wait_for(
        lambda a: a.get("rule") == rule_name and a["event"].get("proc.exe") == str(exe),
        timeout=20,
        path=mon.stdout_path,
    )


def test_alerts_then_sighup_reload_good_then_bad(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "kernel tests need root"
    tag = uuid.uuid4().hex[:6]
    comm_a, comm_b = f"rwa{tag}", f"rwb{tag}"  # comm is at most 15 characters
    exe_a, exe_b = tmp_path / comm_a, tmp_path / comm_b
    shutil.copy("/bin/true", exe_a)
    shutil.copy("/bin/true", exe_b)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rule("Rule A", comm_a))

    mon = RunningMonitor(
        tmp_path / "mon",
        args=["--no-default-rules", "--rules", str(rules)],
        env={"RINGWATCH_RULES_D": "/nonexistent/rules.d"},  # only this test's rules
    )
    with mon:
        assert wait_logs(mon, "rules_loaded", 1)["rules"] == 1
        run_exe(exe_a)
        alert = alert_for(mon, "Rule A", exe_a)
        assert alert["output"] == f"Rule A ran {exe_a} as root"
        assert alert["priority"] == "NOTICE" and alert["event"]["evt.type"] == "execve"

        # A good new file: Rule B replaces Rule A.
        rules.write_text(rule("Rule B", comm_b))
        assert mon.proc is not None
        mon.proc.send_signal(signal.SIGHUP)
        assert wait_logs(mon, "rules_reloaded", 1)["rules"] == 1
        run_exe(exe_a)
        run_exe(exe_b)
        alert_for(mon, "Rule B", exe_b)
        # Events are evaluated in order: Rule A would have alerted before Rule B did.
        assert [a["rule"] for a in read_jsonl(mon.stdout_path)] == ["Rule A", "Rule B"]

        # A bad new file: refused, every error logged, Rule B still running.
        rules.write_text(
            rule("Rule C", comm_a)
            + "  action: kill\n"
            + rule("Rule D", comm_b).replace("proc.name ==", "proc.nmae ==")
        )
        mon.proc.send_signal(signal.SIGHUP)
        failed = wait_logs(mon, "rules_reload_failed", 1)
        assert failed["kept_rules"] == 1
        assert failed["errors"] == [
            f"{rules}:5:11: rule 'Rule C': action: 'kill' is not one of alert, deny, audit",
            f"{rules}:7:39: rule 'Rule D': unknown field 'proc.nmae' (did you mean 'proc.name'?)",
        ]
        assert count_logs(mon, "rules_reloaded") == 1
        run_exe(exe_b)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(read_jsonl(mon.stdout_path)) < 3:
            time.sleep(0.05)
        assert [a["rule"] for a in read_jsonl(mon.stdout_path)] == ["Rule A", "Rule B", "Rule B"]
        # `ringwatch stats` counts per rule (the reloaded set: Rule B matched twice, on execs only).
        res = subprocess.run(
            [sys.executable, "-m", "monitor", "stats", "--json", "--control-socket", str(mon.control_socket)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        rule_b = json.loads(res.stdout)["rules"]["Rule B"]
        assert rule_b["matched"] == 2 and rule_b["evaluated"] >= 3 and rule_b["errors"] == 0
        assert mon.stop() == 0


def test_events_flag_puts_events_beside_alerts_on_stdout(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "kernel tests need root"
    comm = f"rwe{uuid.uuid4().hex[:6]}"
    exe = tmp_path / comm
    shutil.copy("/bin/true", exe)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rule("Rule E", comm))
    mon = RunningMonitor(
        tmp_path / "mon",
        args=["--events", "--no-default-rules", "--rules", str(rules)],
        env={"RINGWATCH_RULES_D": "/nonexistent/rules.d"},
    )
    with mon:
        run_exe(exe)
        alert = alert_for(mon, "Rule E", exe)
        event = mon.wait_for(
            lambda e: "rule" not in e and e.get("evt.type") == "execve" and e.get("proc.exe") == str(exe),
            path=mon.stdout_path,
        )
        assert alert["event"] == event
        assert mon.stop() == 0
