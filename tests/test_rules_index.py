"""The event-type index: which rules an event meets, measured by evaluation counters."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.rules import load
from monitor.rules.index import event_types
from tests.rules_util import default_rules, exec_event, load_text

FIXTURE = Path(__file__).parent / "fixtures" / "exec_events.jsonl"

RULES = """
- macro: spawned
  condition: evt.type in ["execve", "execveat"]
- rule: on_exec
  condition: spawned and proc.name == "bash"
  output: o
  priority: INFO
- rule: on_exit
  condition: evt.type == "exit" and proc.exit_code != 0
  output: o
  priority: INFO
- rule: on_anything
  condition: user.uid == 0
  output: o
  priority: INFO
- rule: exec_or_fork
  condition: evt.type == "fork" or (evt.type == "execve" and user.uid == 0)
  output: o
  priority: INFO
- rule: disabled_untyped
  condition: user.uid == 1
  output: o
  priority: INFO
  enabled: false
"""


def test_each_rule_only_meets_its_event_types(tmp_path: Path) -> None:
    rs = load_text(tmp_path, RULES)
    types = {r.name: r.event_types for r in rs.rules}
    assert types == {
        "on_exec": {"execve", "execveat"},
        "on_exit": {"exit"},
        "on_anything": None,
        "exec_or_fork": {"fork", "execve"},
        "disabled_untyped": None,
    }
    for _ in range(3):
        rs.matching(exec_event())
    for _ in range(2):
        rs.matching({"evt.type": "exit", "proc.exit_code": 1, "user.uid": 0})
    rs.matching({"evt.type": "fork", "user.uid": 0})
    rs.matching({"evt.type": "open", "user.uid": 0})
    evaluated = {name: s["evaluated"] for name, s in rs.stats().items()}
    assert evaluated == {
        "on_exec": 3,
        "on_exit": 2,
        "on_anything": 7,
        "exec_or_fork": 4,
        "disabled_untyped": 0,
    }
    # The untyped rule keeps the kernel from filtering by type.
    assert rs.event_types() is None


def test_event_types_for_the_kernel_filter(tmp_path: Path) -> None:
    typed = RULES.replace("condition: user.uid == 0", 'condition: evt.type == "open" and user.uid == 0')
    rs = load_text(tmp_path, typed)
    assert rs.event_types() == {"execve", "execveat", "exit", "fork", "open"}
    assert load(default_rules()).event_types() == {"execve", "execveat"}


def test_type_analysis_is_conservative(tmp_path: Path) -> None:
    cases = {
        'not evt.type == "exit"': None,
        'evt.type != "exit"': None,
        'evt.type =~ "^exec"': None,
        'evt.type == "execve" and evt.type == "exit"': set(),
        '(evt.type == "open" or evt.type == "openat") and (evt.type in ["openat", "unlink"])': {"openat"},
        '"execve" == evt.type': {"execve"},
        'evt.type == "open" or proc.pid == 1': None,
    }
    body = "".join(
        f"- rule: r{i}\n  condition: '{c}'\n  output: o\n  priority: INFO\n" for i, c in enumerate(cases)
    )
    rs = load_text(tmp_path, body)
    got = {
        c: (None if r.event_types is None else set(r.event_types))
        for c, r in zip(cases, rs.rules, strict=True)
    }
    assert got == cases
    assert event_types(rs.rules[0].ast, "evt__type") is None


def test_index_gives_the_same_matches_as_evaluating_everything() -> None:
    rs = load(default_rules())
    events = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    extra = [dict(ev, **{"evt.type": t}) for ev in events for t in ("exit", "fork", "open")]
    for ev in events + extra:
        brute = [r.name for r in rs.rules if r.enabled and r.matches(ev)]
        assert [r.name for r in rs.matching(ev)] == brute


def test_rules_with_action_expose_name_condition_and_ast(tmp_path: Path) -> None:
    text = """
- list: bad_dirs
  items: [/tmp/, /dev/shm/]
- macro: from_bad_dir
  condition: proc.exe startswith "/tmp/" or proc.exe startswith "/dev/shm/"
- rule: block tmp exec
  condition: evt.type == "execve" and from_bad_dir
  output: o
  priority: CRITICAL
  action: deny
- rule: just alert
  condition: evt.type == "execve"
  output: o
  priority: INFO
"""
    rs = load_text(tmp_path, text)
    (deny,) = rs.rules_with_action("deny")
    assert deny.name == "block tmp exec"
    assert deny.condition == 'evt.type == "execve" and (proc.exe =~ "^/tmp/" or proc.exe =~ "^/dev/shm/")'
    assert [r.name for r in rs.rules_with_action("alert")] == ["just alert"]
    # The AST is rule-engine's; its symbols map back to Falco names.
    import rule_engine.ast as ast

    right = deny.ast.right
    assert isinstance(right, ast.LogicExpression) and right.type == "or"
    assert isinstance(right.left, ast.FuzzyComparisonExpression)
    assert rs.field_of(right.left.left.name) == "proc.exe"
    assert right.left.right.value == "^/tmp/"
    # The expanded condition is itself a loadable condition that gives the same rule.
    again = load_text(
        tmp_path,
        f"- rule: x\n  condition: '{deny.condition}'\n  output: o\n  priority: INFO\n",
        name="again.yaml",
    )
    assert again.rules[0].condition == deny.condition
