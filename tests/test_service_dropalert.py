"""The drop alert under a real ring-buffer overflow: a 4 KiB buffer and an exec storm."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.service.dropwatch import RULE
from tests.kernel_util import scratch_cgroup
from tests.monitor_proc import REPO, RunningMonitor, read_jsonl

pytestmark = pytest.mark.kernel

STORM = r"""
import os, sys
cg, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(cg, "cgroup.procs"), "w") as fh:
    fh.write(str(os.getpid()))
for _ in range(n):
    try:
        os.execv("/nonexistent/ringwatch-drop-storm", ["storm"])
    except FileNotFoundError:
        pass
"""


def _stats(sock: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "monitor", "stats", "--json", "--control-socket", str(sock)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _wait(pred: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_drop_alert_reports_every_lost_record(tmp_path: Path) -> None:
    n = 5000
    with scratch_cgroup("dropalert") as cg:
        cfg = {
            "sensor": {"ringbuf_bytes": 4096, "cgroups": [str(cg)]},
            "drop_alert": {"min_interval_s": 1.0, "check_interval_s": 0.1},
        }
        with RunningMonitor(tmp_path, cfg) as mon:
            subprocess.run([sys.executable, "-c", STORM, str(cg), str(n)], check=True, timeout=120)
            # Everything the storm produced has been counted, delivered or dropped.
            snap = _wait(lambda: (s := _stats(mon.control_socket))["produced"]["exec"] >= n and s,
                         "the storm's records to be counted")

            def alerts() -> list[dict[str, Any]]:
                return [r for r in read_jsonl(mon.stdout_path) if r.get("rule") == RULE]

            lost = snap["drops"]["records_lost"]
            assert lost > 0, "a 4 KiB ring buffer should have overflowed"
            # Rate-limited alerts, but together they account for every lost record.
            _wait(lambda: sum(a["output_fields"]["n_drops"] for a in alerts()) == lost,
                  f"alerts adding up to {lost} lost records")
            final = _stats(mon.control_socket)
            assert mon.stop() == 0
    got = alerts()
    assert final["drops"]["records_lost"] == lost  # the storm is over: nothing more lost
    assert all(a["priority"] == "CRITICAL" for a in got)
    kernel = final["drops"]["kernel"]
    assert sum(a["output_fields"].get("kernel.ringbuf_full", 0) for a in got) == kernel["ringbuf_full"] > 0
    assert sum(a["output_fields"]["n_drops_kernel"] for a in got) == sum(kernel.values())
    assert final["alerts"]["by_rule"][RULE] == len(got)
    assert final["service"]["drop_alert"]["alerts"] == len(got)
    assert "records dropped" in got[0]["output"]
