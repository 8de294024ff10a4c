"""Falco's stable rules, unmodified, fire on what the kernel saw; alerts in Falco's shape.

A real `ringwatch run --rules falco_rules.yaml` (plus one Falco-syntax rule of this
test's own), then real commands: `find -name .aws/credentials` (Falco's "Find AWS
Credentials"), `ln -s /etc/shadow` ("Create Symlink Over Sensitive Files") and `cat
/etc/shadow` under a shell (the test's rule, which tests Falco's ancestor indexing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.monitor_proc import RunningMonitor

pytestmark = pytest.mark.kernel

STABLE = Path(__file__).resolve().parent / "fixtures" / "falco" / "falco_rules.yaml"
OWN_RULE = """- ringwatch: {syntax: falco}
- rule: Shadow read under a shell
  desc: cat of /etc/shadow whose parent is a shell (Falco's aname[1] is the parent)
  condition: >
    evt.type in (open, openat, openat2) and evt.is_open_read=true and fd.typechar='f'
    and fd.name = /etc/shadow and proc.name = cat and proc.aname[1] in (sh, bash, dash)
    and proc.aname[0] = cat and evt.res = SUCCESS
  output: shadow read by %proc.name parent=%proc.aname[1] file=%fd.name res=%evt.res
  priority: WARNING
  tags: [test]
"""


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMonitor]:
    assert os.geteuid() == 0, "kernel tests need root"
    work = tmp_path_factory.mktemp("falco-rules")
    own = work / "own.yaml"
    own.write_text(OWN_RULE)
    pin = Path(f"/sys/fs/bpf/ringwatch-falco-{uuid.uuid4().hex[:8]}")
    cfg = {"lineage": {"bpffs_dir": str(pin)}, "control": {"socket": str(work / "control.sock")},
           "outputs": {"alerts": {"stdout_format": "falco", "journal": "never"}}}
    m = RunningMonitor(work, cfg, args=["--no-default-rules", "--rules", str(STABLE), "--rules", str(own)],
                       env={"RINGWATCH_RULES_D": "/nonexistent/rules.d"})
    try:
        m.start(timeout=180)
        loaded = m.wait_log("rules_loaded")
        assert loaded["rules"] == 26  # Falco's 25 stable rules, and this test's own
        assert loaded["skipped"] == {}
        yield m
        assert m.stop() == 0
    finally:
        m.__exit__(None, None, None)
        shutil.rmtree(pin, ignore_errors=True)


def falco_alert(mon: RunningMonitor, rule: str, pred: Any) -> dict[str, Any]:
    return mon.wait_for(lambda a: a.get("rule") == rule and pred(a), timeout=20, path=mon.stdout_path)


def test_find_aws_credentials_fires(mon: RunningMonitor, tmp_path: Path) -> None:
    subprocess.run(["find", str(tmp_path), "-name", ".aws/credentials"], check=False, capture_output=True)
    alert = falco_alert(mon, "Find AWS Credentials",
                        lambda a: str(tmp_path) in (a["output_fields"].get("proc.cmdline") or ""))
    assert set(alert) == {"time", "rule", "priority", "output", "output_fields", "hostname", "source", "tags"}
    assert alert["priority"] == "Warning" and alert["source"] == "syscall"
    assert "maturity_stable" in alert["tags"]
    assert alert["output_fields"]["proc.name"] == "find"
    assert "Detected AWS credentials search activity" in alert["output"]


def test_symlink_over_sensitive_file_fires(mon: RunningMonitor, tmp_path: Path) -> None:
    link = tmp_path / "shadow-link"
    subprocess.run(["ln", "-s", "/etc/shadow", str(link)], check=True)
    alert = falco_alert(mon, "Create Symlink Over Sensitive Files",
                        lambda a: a["output_fields"].get("evt.arg.linkpath") == str(link)
                        or str(link) in a["output"])
    assert alert["output_fields"]["evt.arg.target"] == "/etc/shadow"


def test_own_falco_rule_with_ancestor_index_fires(mon: RunningMonitor) -> None:
    marker = f"falco-{uuid.uuid4().hex[:6]}"
    # `sh -c 'cat ...; :'`: the trailing command keeps sh from exec'ing cat in its place.
    subprocess.run(["sh", "-c", f"cat /etc/shadow >/dev/null; : {marker}"], check=True)
    alert = falco_alert(mon, "Shadow read under a shell", lambda a: True)
    assert alert["output_fields"]["proc.aname[1]"] == "sh"
    assert alert["output_fields"]["evt.res"] == "SUCCESS"
    assert alert["output"].endswith("shadow read by cat parent=sh file=/etc/shadow res=SUCCESS")
    # the recorded event indexes as Falco does: aname[0] is the process, [1] the parent
    # (waited for: the record file and stdout are written by different threads)
    event = mon.wait_for(lambda e: e.get("fd.name") == "/etc/shadow" and e.get("proc.name") == "cat")
    assert event["proc.aname"][:2] == ["cat", "sh"]
