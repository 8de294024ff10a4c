"""Text output: one readable line per alert and per event, on a real `run -o text`."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.sinks import textfmt
from tests.monitor_proc import RunningMonitor


def test_alert_line_has_time_priority_rule_output() -> None:
    line = textfmt.line({"time": "2026-12-01T11:14:29.994316145Z", "priority": "WARNING",
                         "rule": "Marker ran", "action": "alert", "output": "marker ran (pid=7)",
                         "event": {"evt.type": "execve"}})
    assert line == "2026-12-01T11:14:29.994Z WARNING  Marker ran: marker ran (pid=7)"
    denied = textfmt.line({"time": "t", "priority": "CRITICAL", "rule": "R", "action": "deny", "output": "o"})
    assert denied.endswith("R: o [deny]")


def test_event_line_says_what_happened() -> None:
    line = textfmt.line({"evt.time": "2026-12-01T11:14:29.983771312Z", "evt.type": "openat",
                         "proc.pid": 42, "proc.name": "cat", "fd.name": "/etc/shadow",
                         "evt.failed": True, "evt.errno": "EACCES"})
    assert line == "2026-12-01T11:14:29.983Z event    openat pid=42 cat name=/etc/shadow failed=EACCES"


def test_control_characters_cannot_break_the_line_or_the_terminal() -> None:
    # A file name is attacker-chosen: a newline would forge a second record, ESC would
    # drive the terminal.
    line = textfmt.line({"evt.type": "openat", "proc.pid": 1, "proc.name": "x",
                         "fd.name": "/tmp/a\n2026 CRITICAL fake\x1b[2J"})
    assert "\n" not in line and "\x1b" not in line
    assert "/tmp/a\\n2026 CRITICAL fake\\x1b[2J" in line


def test_default_is_text_only_on_a_terminal() -> None:
    assert textfmt.default_format(True) == "text"
    assert textfmt.default_format(False) == "json"


@pytest.fixture
def bpffs_dir() -> Iterator[Path]:
    path = Path(f"/sys/fs/bpf/rw-ops17-{uuid.uuid4().hex[:8]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.kernel
@pytest.mark.parametrize("how", ["flag", "config"])
def test_run_prints_text_lines(tmp_path: Path, bpffs_dir: Path, how: str) -> None:
    """`run -o text`, or `outputs.alerts.stdout_format: text` in the config: stdout is a
    file here (not a terminal), so without either it would be JSON."""
    marker = f"rwtxt{uuid.uuid4().hex[:8]}"
    exe = tmp_path / marker
    shutil.copy("/bin/true", exe)
    rules = tmp_path / "marker.yaml"
    rules.write_text(
        "- rule: Marker ran\n"
        f'  condition: evt.type == "execve" and proc.name == "{marker}"\n'
        '  output: "marker ran (pid=%proc.pid)"\n'
        "  priority: WARNING\n"
    )
    cfg: dict[str, Any] = {"lineage": {"bpffs_dir": str(bpffs_dir), "max_entries": 4096},
                           "enforcement": {"enabled": False}}
    flag = ["-o", "text"] if how == "flag" else []
    if how == "config":
        cfg["outputs"] = {"alerts": {"stdout_format": "text"}}
    mon = RunningMonitor(tmp_path / "mon", cfg, args=[*flag, "--events", "execve",
                                                      "--no-default-rules", "--rules", str(rules)])
    with mon:
        proc = subprocess.Popen([str(exe)])
        proc.wait()
        alert = re.compile(rf"^\S+Z WARNING  Marker ran: marker ran \(pid={proc.pid}\)$", re.M)
        event = re.compile(rf"^\S+Z event    execve pid={proc.pid} {marker} exe={re.escape(str(exe))} "
                           rf"cmdline={marker}$", re.M)
        deadline = time.monotonic() + 20
        while True:
            out = mon.stdout_path.read_text(errors="replace")
            if alert.search(out) and event.search(out):
                break
            assert time.monotonic() < deadline, f"no text lines for pid {proc.pid}:\n{out[-2000:]}"
            time.sleep(0.1)
        assert mon.stop() == 0
    # Nothing but text lines: no JSON record slipped through.
    assert not [ln for ln in mon.stdout_path.read_text().splitlines() if ln.startswith("{")]


def test_text_is_the_default_on_a_terminal_json_on_a_pipe() -> None:
    """`replay` (same -o as `run`, no kernel needed) with stdout a real pty, then a pipe."""
    import os
    import pty
    import sys

    from tests.monitor_proc import REPO

    fixture = REPO / "tests" / "fixtures" / "exec_events.jsonl"
    cmd = [sys.executable, "-m", "monitor", "replay", str(fixture)]
    env = {**os.environ, "RINGWATCH_RULES_D": "/nonexistent/rules.d"}
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=slave, stderr=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(60) == 0
    lines = b"".join(chunks).decode().splitlines()
    assert lines and all(re.match(r"^\S+Z [A-Z]+ +[^{]", ln) for ln in lines), lines[:3]
    assert any(" CRITICAL Netcat remote code execution: " in ln for ln in lines)
    piped = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert piped.stdout.splitlines() and all(ln.startswith("{") for ln in piped.stdout.splitlines())
