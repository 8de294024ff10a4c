"""LSM enforcement for real, in a guest whose kernel allows BPF LSM (tests/vm.py).

One boot, one `ringwatch run` (one compile) inside it: tests/guest/enforce_checks.py
performs every operation and records errnos and the alerts ringwatch printed; the tests
below assert on that record. The guest is booted once per module.
"""

from __future__ import annotations

import errno
import json
from typing import Any

import pytest

from tests.vm import run_in_guest

pytestmark = pytest.mark.vm

BIN = "/run/rwtest/bin"


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    results_dir = tmp_path_factory.mktemp("lsm-guest")
    res = run_in_guest([".venv/bin/python", "tests/guest/enforce_checks.py", str(results_dir)],
                       results_dir, timeout=1200)
    out = results_dir / "results.json"
    assert out.exists(), f"guest wrote no results (exit {res.returncode}):\n{res.output[-4000:]}"
    results: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in results, (
        results["error"] + "\n" + results.get("stderr_tail", "")
        + (results_dir / "monitor-stderr.log").read_text(errors="replace")[-3000:]
        if (results_dir / "monitor-stderr.log").exists() else results["error"])
    assert res.returncode == 0, res.output[-4000:]
    return results


def alert_checks(alert: dict[str, Any] | None, action: str, guest: dict[str, Any]) -> dict[str, Any]:
    assert alert is not None, "no alert for the operation"
    assert alert["action"] == action
    assert alert["event"]["evt.type"] == "enforce"
    assert alert["event"]["enforce.action"] == action
    return alert


def test_guest_kernel_has_bpf_lsm(guest: dict[str, Any]) -> None:
    assert "bpf" in guest["lsm"].split(",")


def test_exec_denied_with_eperm_and_others_allowed(guest: dict[str, Any]) -> None:
    assert guest["exec_evil"] == errno.EPERM
    assert guest["exec_ok"] == 0


def test_exec_deny_scoped_to_one_uid(guest: dict[str, Any]) -> None:
    assert guest["exec_scoped_root"] == 0
    assert guest["exec_scoped_uid"] == errno.EPERM
    a = alert_checks(guest["alert_scoped"], "deny", guest)
    assert a["event"]["user.uid"] == 4321


def test_exec_deny_scoped_to_one_cgroup(guest: dict[str, Any]) -> None:
    assert guest["exec_cg_outside"] == 0
    assert guest["exec_cg_inside"] == errno.EPERM
    a = alert_checks(guest["alert_cgroup"], "deny", guest)
    assert a["event"]["cgroup.id"] == guest["cgroup_id"]


def test_exec_denial_alert_has_process_and_ancestry(guest: dict[str, Any]) -> None:
    a = alert_checks(guest["alert_exec"], "deny", guest)
    assert a["rule"] == "deny exec evil"
    assert a["event"]["enforce.op"] == "exec"
    assert a["event"]["evt.errno"] == "EPERM"
    # subprocess forked a child of the check script; that child's exec was refused.
    assert a["process"]["ppid"] == guest["pid"]
    assert a["ancestors"][0]["pid"] == guest["pid"]
    assert a["ancestors"][0]["name"] == "python"
    assert a["output"] == f"deny exec {BIN}/evil by python"


def test_open_denied_except_for_named_binary(guest: dict[str, Any]) -> None:
    assert guest["open_secret"] == errno.EPERM
    assert guest["cat_secret_rc"] != 0
    assert guest["head_secret"] == "secret\n", guest["stats"]["enforcement"]
    a = alert_checks(guest["alert_open"], "deny", guest)
    assert a["process"]["pid"] == guest["pid"]
    assert a["ancestors"][0]["pid"] == guest["ppid"]


def test_audit_reports_without_denying(guest: dict[str, Any]) -> None:
    assert guest["open_audited"] == 0
    a = alert_checks(guest["alert_audit"], "audit", guest)
    assert a["rule"] == "audit open"
    assert (a["event"]["evt.res"], a["event"]["evt.rawres"]) == ("SUCCESS", 0)
    assert a["process"]["pid"] == guest["pid"]


def test_connect_to_denied_cidr_refused_other_allowed(guest: dict[str, Any]) -> None:
    assert guest["connect_allowed"] == 0
    assert guest["connect_denied"] == errno.EPERM
    assert guest["connect_denied_mapped"] == errno.EPERM  # ::ffff:127.66.0.1 is IPv4
    a = alert_checks(guest["alert_connect"], "deny", guest)
    assert a["event"]["fd.sip"] == "127.66.0.1"
    assert a["process"]["pid"] == guest["pid"]


def test_connect_ipv6_cidr(guest: dict[str, Any]) -> None:
    assert guest["connect6_denied"] == errno.EPERM
    assert guest["connect6_other"] not in (0, errno.EPERM)  # unroutable, but not denied
    a = alert_checks(guest["alert_connect6"], "deny", guest)
    assert a["event"]["fd.sip"] == "fd00:66::1"


def test_reload_lifts_a_denial_and_adds_one(guest: dict[str, Any]) -> None:
    assert guest["reload_log"]["rules"] == 6
    assert guest["exec_evil_after_reload"] == 0
    assert guest["exec_ok_after_reload"] == errno.EPERM
    alert_checks(guest["alert_ok_after_reload"], "deny", guest)
    evil_alerts = [a for a in guest["alerts"] if a["rule"] == "deny exec evil"]
    assert len(evil_alerts) == 1  # the exec after reload was not reported either


def test_every_alert_is_an_enforcement_alert(guest: dict[str, Any]) -> None:
    assert guest["alerts"]
    assert {a["action"] for a in guest["alerts"]} <= {"deny", "audit"}
    assert guest["stop_rc"] == 0


def test_kernel_counters_and_no_lost_denials(guest: dict[str, Any]) -> None:
    enf = guest["stats"]["enforcement"]
    assert enf["active"] is True
    kernel = enf["kernel"]
    # evil, scoped, cgroup, python's and cat's opens, three connects, ok after reload.
    assert kernel["denied"] == 9
    assert kernel["audited"] == 1
    assert kernel["exe_failed"] == 0
    assert guest["stats"]["produced"]["deny"] == guest["stats"]["events"]["deny"] == 10
