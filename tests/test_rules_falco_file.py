"""Falco rules files as written: file features, skipped rules, errors, the stable rules file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.rules import RuleSet, check, load
from monitor.rules.alert import falco_shape
from tests.monitor_proc import REPO as REPO_ROOT
from tests.rules_util import load_text, problems_of, sources, write

STABLE = Path(__file__).resolve().parent / "fixtures" / "falco" / "falco_rules.yaml"
HEAD = "- required_engine_version: 0.26.0\n"
EXEC = {"evt.type": "execve", "proc.name": "bash", "proc.pname": "sshd", "proc.exe": "/usr/bin/bash",
        "proc.exepath": "/usr/bin/bash",
        "proc.argv": ["bash"], "proc.cmdline": "bash -i", "user.uid": 0, "user.name": "root",
        "proc.aname": ["sshd", "systemd"], "evt.time": "2026-12-01T10:00:00.123456789Z", "evt.ts": 17}


def rule(name: str, condition: str, extra: str = "") -> str:
    return (f"- rule: {name}\n  desc: d\n  condition: {condition}\n  output: \"{name} %proc.name\"\n"
            f"  priority: WARNING\n{extra}")


def with_warnings(tmp_path: Path, text: str) -> RuleSet:
    rs, problems = check(sources(write(tmp_path, "rules.yaml", text)))
    assert rs is not None, [str(p) for p in problems]
    return rs


# --- file features -------------------------------------------------------------------


def test_versions_and_plugins_are_accepted_plugins_warned(tmp_path: Path) -> None:
    text = HEAD + "- required_plugin_versions:\n    - name: container\n      version: 0.4.0\n"
    rs = with_warnings(tmp_path, text + rule("r", "evt.type = execve"))
    assert [r.name for r in rs.rules] == ["r"]
    assert any("required plugin 'container'" in str(w) for w in rs.warnings)


def test_append_and_override(tmp_path: Path) -> None:
    base = HEAD + "- list: shells\n  items: [bash]\n"
    base += rule("r", "evt.type = execve and proc.name in (shells)")
    (tmp_path / "a.yaml").write_text(base + rule("disabled one", "evt.type = execve"))
    (tmp_path / "b.yaml").write_text(HEAD + """
- list: shells
  items: [zsh]
  append: true
- rule: r
  condition: and user.uid = 0
  output: "uid=%user.uid"
  priority: CRITICAL
  override:
    condition: append
    output: append
    priority: replace
- rule: disabled one
  enabled: false
""")
    rs = load(sources(tmp_path))
    r = {x.name: x for x in rs.rules}
    assert r["r"].priority == "CRITICAL" and r["r"].matches(EXEC)
    assert not r["r"].matches({**EXEC, "user.uid": 1000})
    assert r["r"].output.render(EXEC) == "r bash uid=0"
    assert r["disabled one"].enabled is False
    assert r["r"].matches({**EXEC, "proc.name": "zsh"})  # the appended list item


def test_appending_across_syntaxes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + rule("r", "evt.type = execve"))
    (tmp_path / "b.yaml").write_text(
        "- rule: r\n  condition: and user.uid == 0\n  override:\n    condition: append\n")
    _, problems = check(sources(tmp_path))
    assert "cannot append a ringwatch-syntax condition to a falco-syntax one" in str(problems[0])


def test_exceptions_with_falco_comps(tmp_path: Path) -> None:
    text = HEAD + "- list: ok_parents\n  items: [cron]\n" + rule("r", "evt.type = execve", """  exceptions:
    - name: parent_and_dir
      fields: [proc.pname, proc.exepath]
      comps: [in, pmatch]
      values:
        - [ok_parents, [/usr/bin]]
    - name: cmdline
      fields: proc.cmdline
      comps: icontains
      values: [BASH -I, other]
    - name: ancestor
      fields: [proc.aname, proc.name]
      comps: [=, startswith]
      values:
        - [init, ba]
""")
    m = load_text(tmp_path, text).rules[0].matches
    assert m({**EXEC, "proc.cmdline": "bash -c x"})
    assert not m({**EXEC, "proc.cmdline": "bash -i"})  # icontains exception
    assert not m({**EXEC, "proc.cmdline": "x", "proc.pname": "cron"})  # in list + pmatch
    assert m({**EXEC, "proc.cmdline": "x", "proc.pname": "cron", "proc.exepath": "/opt/bash"})
    assert not m({**EXEC, "proc.cmdline": "x", "proc.aname": ["x", "init"]})  # any ancestor


def test_other_sources_are_skipped_with_a_warning(tmp_path: Path) -> None:
    text = HEAD + rule("audit", "ka.verb = create", "  source: k8s_audit\n") + rule("r", "evt.type = execve")
    rs = with_warnings(tmp_path, text)
    assert [r.name for r in rs.rules] == ["r"]
    assert [(s.name, s.reason) for s in rs.skipped] == [
        ("audit", "source 'k8s_audit': ringwatch only evaluates syscall rules")]


def test_a_rule_needing_a_field_ringwatch_lacks_is_skipped_naming_it(tmp_path: Path) -> None:
    text = HEAD + "- macro: k8s\n  condition: (k8s.pod.labels != default)\n" + rule(
        "r", "evt.type = execve and k8s") + rule("ok", "evt.type = execve")
    rs = with_warnings(tmp_path, text)
    assert [r.name for r in rs.rules] == ["ok"]
    reason = "needs field k8s.pod.labels (through macro k8s), which ringwatch does not provide"
    assert [(s.name, s.reason) for s in rs.skipped] == [("r", reason)]
    assert any(str(w).endswith(f"rule 'r': skipped: {reason}") for w in rs.warnings)


def test_rules_list_shows_skipped_rules_and_why(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", HEAD + rule("needs pgrp", "evt.type = execve and proc.vpgid.name = x"))
    run = subprocess.run([sys.executable, "-m", "monitor", "rules", "list", "--json", "--no-default-rules",
                          "--rules", str(path)], capture_output=True, text=True, cwd=REPO_ROOT,
                         env={"RINGWATCH_RULES_D": "/nonexistent", "PATH": "/usr/bin:/bin"}, check=True)
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert rows == [{"name": "needs pgrp", "priority": "WARNING", "enabled": "skipped", "action": "",
                     "tags": [], "event_types": [], "file": str(path), "line": 2,
                     "skipped": "needs field proc.vpgid.name, which ringwatch does not provide"}]


def test_skip_if_unknown_filter(tmp_path: Path) -> None:
    bad = HEAD + rule("r", "evt.type = execve and proc.nosuch = 1")
    msg = str(problems_of(tmp_path, bad)[0])
    assert msg.endswith("rule 'r': unknown field 'proc.nosuch'")
    rs = with_warnings(tmp_path, bad + "  skip-if-unknown-filter: true\n")
    assert [s.name for s in rs.skipped] == ["r"] and "proc.nosuch" in rs.skipped[0].reason


def test_warn_evttypes(tmp_path: Path) -> None:
    rs = with_warnings(tmp_path, HEAD + rule("r", "proc.name = bash"))
    assert any("does not restrict evt.type" in str(w) for w in rs.warnings)
    rs = with_warnings(tmp_path, HEAD + rule("r", "proc.name = bash", "  warn_evttypes: false\n"))
    assert not rs.warnings


# --- errors --------------------------------------------------------------------------


def test_unknown_field_is_named_not_a_macro_cycle(tmp_path: Path) -> None:
    """ringwatch's own syntax: `k8s.pod.labels` under a macro named `k8s` is a field."""
    text = ("- macro: k8s\n  condition: k8s.pod.labels != \"default\"\n"
            + rule("r", 'evt.type == "execve" and k8s'))
    msgs = [str(p) for p in problems_of(tmp_path, text)]
    assert msgs[0].endswith("macro 'k8s': unknown field 'k8s.pod.labels': a Falco field that "
                            "ringwatch does not provide")
    assert not any("cycle" in m for m in msgs)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("evt.type = execve and fd.num = abc", "fd.num is a number; 'abc' is a string"),
        ("evt.type = execve and proc.name > 3", "'>' needs a number field; proc.name is a string"),
        ("evt.type = execve and evt.is_open_read = yes",
         "evt.is_open_read is a boolean; 'yes' is a string (write true or false)"),
        ("evt.type = nosuchsyscall", "unknown event type 'nosuchsyscall'"),
        ("evt.type in (execve, opnat)", "unknown event type 'opnat' (did you mean 'openat'?)"),
        ("evt.type = execve and proc.nam = x", "unknown field 'proc.nam' (did you mean 'proc.name'?)"),
        ("evt.type = execve and no_such_macro", "undefined macro 'no_such_macro'"),
        ("evt.type = execve and proc.name in (nolist) and proc.name in nolist", "undefined list 'nolist'"),
    ],
)
def test_falco_errors_name_the_field_and_types(tmp_path: Path, condition: str, message: str) -> None:
    msgs = [str(p) for p in problems_of(tmp_path, HEAD + rule("r", condition))]
    assert len(msgs) == 1 and msgs[0].endswith(f"rule 'r': {message}"), msgs


def test_errors_point_into_the_falco_condition(tmp_path: Path) -> None:
    msg = str(problems_of(tmp_path, HEAD + rule("r", "evt.type = execve and fd.num = abc"))[0])
    assert msg.startswith(f"{tmp_path}/rules.yaml:4:45: ")  # `abc`, on the condition's line


def test_ringwatch_syntax_unknown_event_type_and_type_error(tmp_path: Path) -> None:
    msg = str(problems_of(tmp_path, rule("r", '"evt.type == \\"nosuchsyscall\\""'))[0])
    assert msg.endswith("rule 'r': condition: unknown event type 'nosuchsyscall'")
    msg = str(problems_of(tmp_path, rule("r", '"evt.type == \\"execve\\" and proc.name > 3"'))[0])
    assert msg.endswith("condition: data type mismatch: proc.name is a string, compared with a number")
    # rule-engine itself accepts this one, which could never match
    msg = str(problems_of(tmp_path, rule("r", '"evt.type == \\"execve\\" and proc.pid == \\"1\\""'))[0])
    assert msg.endswith("condition: data type mismatch: proc.pid is a number, compared with a string")


# --- Falco's stable rules, unmodified ------------------------------------------------

# What this host's ringwatch can run of Falco's 25 stable rules, and why not the rest.
STABLE_ENABLED = {
    "Directory traversal monitored file read", "Run shell untrusted", "System user interactive",
    "Search Private Keys or Passwords", "Remove Bulk Data from Disk", "Create Symlink Over Sensitive Files",
    "Create Hardlink Over Sensitive Files", "PTRACE attached to process", "PTRACE anti-debug attempt",
    "Find AWS Credentials", "Fileless execution via memfd_create",
    # Through Falco's `container` macro and container.* fields (monitor/events/container.py).
    "Netcat Remote Code Execution in Container", "Read sensitive file untrusted",
    "Debugfs Launched in Privileged Container", "Packet socket created in container",
    "Clear Log Activities", "Redirect STDOUT/STDIN to Network Connection in Container",
    # proc.duration (Falco's proc_is_new macro).
    "Read sensitive file trusted after startup",
    # proc.tty and proc.exepath, resolved by the kernel at exec (monitor/events/exe.py).
    "Execution from /dev/shm", "Terminal shell in container",
    # thread.cap_* (task->cred), proc.is_exe_upper_layer (overlayfs), fd.sip.name (names
    # resolved in the background) with k8s.ns.name (monitor/events/creds.py, exe.py, dns.py).
    "Linux Kernel Module Injection Detected", "Detect release_agent File Container Escapes",
    "Drop and execute new binary in container", "Contact K8S API Server From Container",
    # fd.l4proto, fd.connected and Falco's fd.ip/fd.net/fd.snet checks on the kernel's ends.
    "Disallowed SSH Connection Non Standard Port",
}


def test_the_stable_rules_file_loads_unmodified() -> None:
    text = STABLE.read_text()
    assert text.startswith("# SPDX-License-Identifier: Apache-2.0")
    rs, problems = check(sources(STABLE))
    assert rs is not None, [str(p) for p in problems]
    enabled = {r.name for r in rs.rules if r.enabled}
    skipped = {s.name: s.reason for s in rs.skipped}
    print(f"Falco stable rules: {len(enabled)} of 25 enabled, {len(skipped)} skipped")
    for name, reason in sorted(skipped.items()):
        print(f"  skipped {name}: {reason}")
    assert len(enabled) + len(skipped) == 25
    assert enabled == STABLE_ENABLED
    assert all(r.startswith("needs field ") for r in skipped.values())
    # every rule is typed by evt.type, so the kernel records only what they need
    assert all(r.event_types for r in rs.rules)


def test_stable_rules_match_what_they_describe() -> None:
    rs = load(sources(STABLE))
    rules = {r.name: r for r in rs.rules}
    find = {**EXEC, "proc.name": "find", "proc.args": "/ -name .aws/credentials",
            "proc.cmdline": "find / -name .aws/credentials", "proc.pname": "bash"}
    assert rules["Find AWS Credentials"].matches(find)
    assert not rules["Find AWS Credentials"].matches({**find, "proc.args": "/ -name notes"})
    symlink = {"evt.type": "symlinkat", "evt.arg.target": "/etc/shadow", "evt.res": "SUCCESS",
               "evt.failed": False,
               "evt.errno": "", "proc.name": "ln"}
    assert rules["Create Symlink Over Sensitive Files"].matches(symlink)
    assert not rules["Create Symlink Over Sensitive Files"].matches({**symlink, "evt.arg.target": "/tmp/x"})
    traversal = {"evt.type": "openat", "evt.is_open_read": True, "fd.type": "file", "fd.num": 3,
                 "fd.name": "/etc/passwd", "fd.nameraw": "../../../etc/passwd", "proc.pname": "nginx",
                 "evt.res": "SUCCESS", "evt.rawres": 3, "evt.errno": ""}
    assert rules["Directory traversal monitored file read"].matches(traversal)
    # Falco's output: %proc.aname[2] is the grandparent ([0] the process); unknown fields <NA>
    out = rules["Directory traversal monitored file read"].output.render(
        {**traversal, "proc.aname": ["cat", "bash", "sshd", "systemd"]})
    assert "gparent=sshd ggparent=systemd gggparent=<NA>" in out and "user_loginuid=<NA>" in out


def test_stable_rules_over_the_default_ruleset() -> None:
    """`ringwatch run --rules falco_rules.yaml`: loaded after the packaged defaults."""
    rs, problems = check(sources(STABLE, defaults=True))
    assert rs is not None, [str(p) for p in problems[:5]]


# --- Falco's alert shape -------------------------------------------------------------


def test_alert_in_falcos_json_shape(tmp_path: Path) -> None:
    rs = load_text(tmp_path, HEAD + rule("Shell", "evt.type = execve and proc.name = bash", "  tags: [t1]\n"))
    alert = rs.alerts(EXEC)[0].to_dict()
    shaped: dict[str, Any] = falco_shape(alert)
    assert shaped == {
        "hostname": alert["host"], "output": "10:00:00.123456789: Warning Shell bash",
        "output_fields": {"proc.name": "bash", "evt.time": 17}, "priority": "Warning", "rule": "Shell",
        "source": "syscall", "tags": ["t1"], "time": "2026-12-01T10:00:00.123456789Z",
    }


def test_a_macro_syntax_error_is_reported_at_the_macro(tmp_path: Path) -> None:
    text = HEAD + "- macro: broken\n  condition: proc.name in (a, b\n"
    text += rule("r", "evt.type = execve and broken")
    msgs = [str(p) for p in problems_of(tmp_path, text)]
    assert msgs[0] == f"{tmp_path}/rules.yaml:3:31: macro 'broken': condition: expected a ')' token"
    assert msgs[1].endswith("rule 'r': uses macro 'broken', which has errors")


def test_validate_prints_skips_as_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", HEAD + rule("needs pgrp", "evt.type = execve and proc.vpgid.name = x"))
    cmd = [sys.executable, "-m", "monitor", "rules", "validate", "--no-default-rules", str(path)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT,
                         env={"RINGWATCH_RULES_D": "/nonexistent", "PATH": "/usr/bin:/bin"}, check=False)
    assert run.returncode == 0
    assert run.stdout == "ok: 0 rules, 1 skipped from 1 file(s)\n"
    assert run.stderr == (f"warning: {path}:2:3: rule 'needs pgrp': skipped: needs field proc.vpgid.name, "
                          "which ringwatch does not provide\n")


def test_replay_of_recorded_events_fires_falcos_run_shell_untrusted() -> None:
    """Events recorded from the kernel (tests/fixtures/exec_events.jsonl: nginx runs sh)."""
    events = REPO_ROOT / "tests" / "fixtures" / "exec_events.jsonl"
    cmd = [sys.executable, "-m", "monitor", "replay", str(events), "--no-default-rules",
           "--rules", str(STABLE)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, check=True,
                         env={"RINGWATCH_RULES_D": "/nonexistent", "PATH": "/usr/bin:/bin"})
    alerts = [json.loads(line) for line in run.stdout.splitlines()]
    # The recorded "nc" (/bin/true) exited before its cgroup could be read, on a host with
    # hybrid cgroups (v2 root shared by host and containers): its container is unknown
    # (container.id ""), and Falco's `container` macro (container.id != host) holds for it.
    # A process that is gone cannot pass for the host.
    assert [a["rule"] for a in alerts] == ["Run shell untrusted", "Netcat Remote Code Execution in Container"]
    assert alerts[1]["event"]["container.id"] == ""
    fields = alerts[0]["output_fields"]
    assert fields["proc.name"] == "sh" and fields["proc.pname"] == "nginx"
    assert alerts[0]["priority"] == "NOTICE"
