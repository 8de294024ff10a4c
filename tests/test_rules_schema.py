"""Rules file schema: every error names file:line:col, the item, and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.rules import RulesError
from tests.rules_util import load_text, problems_of, sources, write

GOOD_RULE = """
- rule: r1
  desc: d
  condition: evt.type == "execve"
  output: "x %proc.name"
  priority: warning
"""


def only(problems: list) -> str:
    assert len(problems) == 1, [str(p) for p in problems]
    return str(problems[0])


def test_minimal_rule_loads_with_defaults(tmp_path: Path) -> None:
    rs = load_text(tmp_path, GOOD_RULE)
    (rule,) = rs.rules
    assert (rule.name, rule.priority, rule.enabled, rule.action, rule.tags) == (
        "r1",
        "WARNING",
        True,
        "alert",
        (),
    )
    assert rule.line == 1 and rule.file.endswith("rules.yaml")


@pytest.mark.parametrize(
    "raw,norm",
    [
        ("emergency", "EMERGENCY"),
        ("Informational", "INFORMATIONAL"),
        ("INFO", "INFORMATIONAL"),
        ("debug", "DEBUG"),
        ("Critical", "CRITICAL"),
    ],
)
def test_priorities_case_insensitive(tmp_path: Path, raw: str, norm: str) -> None:
    rs = load_text(tmp_path, GOOD_RULE.replace("warning", raw))
    assert rs.rules[0].priority == norm


def test_bad_priority(tmp_path: Path) -> None:
    msg = only(problems_of(tmp_path, GOOD_RULE.replace("warning", "urgent")))
    assert msg.startswith(
        f"{tmp_path}/rules.yaml:5:13: rule 'r1': priority: 'urgent' is not one of EMERGENCY"
    )


def test_actions_accepted_and_bad_action(tmp_path: Path) -> None:
    for action in ("alert", "deny", "audit"):
        rs = load_text(tmp_path, GOOD_RULE + f"  action: {action}\n")
        assert rs.rules[0].action == action
    msg = only(problems_of(tmp_path, GOOD_RULE + "  action: kill\n"))
    assert msg == (f"{tmp_path}/rules.yaml:6:11: rule 'r1': action: 'kill' is not one of alert, deny, audit")


def test_unknown_key(tmp_path: Path) -> None:
    msg = only(problems_of(tmp_path, GOOD_RULE + "  severity: high\n"))
    assert msg.startswith(f"{tmp_path}/rules.yaml:6:13: rule 'r1': unknown key 'severity' (known: action,")


def test_missing_required_key(tmp_path: Path) -> None:
    text = GOOD_RULE.replace('  output: "x %proc.name"\n', "")
    assert (
        only(problems_of(tmp_path, text))
        == f"{tmp_path}/rules.yaml:1:3: rule 'r1': missing required key 'output'"
    )


def test_wrong_types(tmp_path: Path) -> None:
    text = GOOD_RULE + "  enabled: maybe\n"
    msg = only(problems_of(tmp_path, text))
    assert msg == f"{tmp_path}/rules.yaml:6:12: rule 'r1': enabled: expected true or false, got str 'maybe'"
    text = GOOD_RULE + "  tags: web\n"
    assert only(problems_of(tmp_path, text)) == (
        f"{tmp_path}/rules.yaml:6:9: rule 'r1': tags: expected a list of strings"
    )


def test_unknown_field_in_condition_points_at_it(tmp_path: Path) -> None:
    text = GOOD_RULE.replace('evt.type == "execve"', 'evt.type == "execve" and proc.nmae == "x"')
    msg = only(problems_of(tmp_path, text))
    # line 3, column of "proc.nmae": "  condition: " is 13 wide, then 25 characters before it.
    assert msg == (
        f"{tmp_path}/rules.yaml:3:39: rule 'r1': unknown field 'proc.nmae' (did you mean 'proc.name'?)"
    )


def test_unknown_name_in_multiline_condition(tmp_path: Path) -> None:
    text = """
    - rule: r2
      condition: >
        evt.type == "execve"
        and proc.name in shels
      output: o
      priority: INFO
    """
    msg = only(problems_of(tmp_path, text))
    assert msg.startswith(
        f"{tmp_path}/rules.yaml:4:22: rule 'r2': unknown name 'shels': not a field, macro or list"
    )


def test_syntax_error_position(tmp_path: Path) -> None:
    text = GOOD_RULE.replace('evt.type == "execve"', 'evt.type == "execve" and and proc.pid == 1')
    msg = only(problems_of(tmp_path, text))
    assert msg == f"{tmp_path}/rules.yaml:3:39: rule 'r1': condition: syntax error near 'and'"


def test_syntax_error_at_end(tmp_path: Path) -> None:
    text = GOOD_RULE.replace('evt.type == "execve"', 'evt.type == "execve" and')
    msg = only(problems_of(tmp_path, text))
    assert (
        msg.startswith(f"{tmp_path}/rules.yaml:3:") and "rule 'r1': condition: syntax error at the end" in msg
    )


def test_type_error_is_a_load_error(tmp_path: Path) -> None:
    text = GOOD_RULE.replace('evt.type == "execve"', 'user.uid =~ "^0"')
    msg = only(problems_of(tmp_path, text))
    assert msg == (f"{tmp_path}/rules.yaml:3:14: rule 'r1': condition: data type mismatch: "
                   "user.uid is a number, compared with a string")


def test_unknown_output_field(tmp_path: Path) -> None:
    msg = only(problems_of(tmp_path, GOOD_RULE.replace("%proc.name", "%proc.nope")))
    assert msg == f"{tmp_path}/rules.yaml:4:11: rule 'r1': output: unknown field %proc.nope"


def test_error_in_macro_is_reported_at_macro_and_rule(tmp_path: Path) -> None:
    text = """
    - macro: m
      condition: proc.bogus == 1
    - rule: r
      condition: m
      output: o
      priority: INFO
    """
    msgs = [str(p) for p in problems_of(tmp_path, text)]
    assert msgs == [
        f"{tmp_path}/rules.yaml:2:14: macro 'm': unknown field 'proc.bogus'",
        f"{tmp_path}/rules.yaml:4:14: rule 'r': uses macro 'm', which has errors",
    ]


def test_macro_cycle(tmp_path: Path) -> None:
    text = """
    - macro: a
      condition: b
    - macro: b
      condition: a
    """
    msgs = [str(p) for p in problems_of(tmp_path, text)]
    assert f"{tmp_path}/rules.yaml:4:14: macro 'b': macro cycle: a -> b -> a" in msgs


def test_invalid_yaml_and_wrong_shape(tmp_path: Path) -> None:
    msg = only(problems_of(tmp_path, "- rule: x\n  condition: [unclosed\n"))
    assert msg.startswith(f"{tmp_path}/rules.yaml:3:1: invalid YAML:")
    msg = only(problems_of(tmp_path, "rule: x\n"))
    assert msg == f"{tmp_path}/rules.yaml:1:1: a rules file must be a YAML list of items"
    msg = only(problems_of(tmp_path, "- something: x\n"))
    assert msg == f"{tmp_path}/rules.yaml:1:3: item has none of rule, list, macro (keys: something)"


def test_every_error_listed_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", GOOD_RULE.replace("warning", "bad"))
    b = write(tmp_path, "b.yaml", "- list: l\n  items: 3\n- macro: m\n  condition: proc.x == 1\n")
    with pytest.raises(RulesError) as info:
        from monitor.rules import load

        load(sources(a, b, tmp_path / "missing.yaml"))
    msgs = [str(p) for p in info.value.problems]
    assert msgs[0] == f"{tmp_path}/missing.yaml:1:1: no such rules file or directory"
    assert any(m.startswith(f"{a}:5:13: rule 'r1': priority:") for m in msgs)
    assert f"{b}:2:10: list 'l': items: expected a list, got int" in msgs
    assert any(m.startswith(f"{b}:4:14: macro 'm': unknown field 'proc.x'") for m in msgs)
    assert len(msgs) == 4
    assert "4 errors in rules" in str(info.value)


def test_exception_shape_errors(tmp_path: Path) -> None:
    base = GOOD_RULE + "  exceptions:\n    - name: e\n"
    msg = only(problems_of(tmp_path, base + "      fields: [proc.name, user.name]\n      values: [[a]]\n"))
    assert msg == (
        f"{tmp_path}/rules.yaml:9:16: rule 'r1': exception 'e': values[0]: expected 2 values "
        "(one per field: proc.name, user.name)"
    )
    msg = only(problems_of(tmp_path, base + "      fields: [proc.nam]\n      values: [[a]]\n"))
    assert msg == (
        f"{tmp_path}/rules.yaml:8:16: rule 'r1': exception 'e': unknown field 'proc.nam' "
        "(did you mean 'proc.name'?)"
    )
    msg = only(problems_of(tmp_path, base + "      fields: [proc.name]\n      comps: [like]\n"))
    assert msg.startswith(
        f"{tmp_path}/rules.yaml:9:14: rule 'r1': exception 'e': comps: unknown operator 'like'"
    )
    msg = only(problems_of(tmp_path, base + "      fields: [user.uid]\n      values: [[root]]\n"))
    assert (
        msg
        == f"{tmp_path}/rules.yaml:9:16: rule 'r1': exception 'e': user.uid: expected an integer, got 'root'"
    )


def test_override_errors(tmp_path: Path) -> None:
    text = (
        GOOD_RULE
        + """
- rule: nope
  condition: and proc.pid == 1
  override: {condition: append}
- rule: r1
  priority: ERROR
  override: {priority: append}
- rule: r1
  condition: and proc.pid == 1
  output: changed
  override: {condition: append}
"""
    )
    msgs = [str(p) for p in problems_of(tmp_path, text)]
    assert msgs == [
        f"{tmp_path}/rules.yaml:7:3: rule 'nope': overrides a rule that no earlier file defines",
        f"{tmp_path}/rules.yaml:12:13: rule 'r1': override: priority cannot be appended "
        "(can be: condition, desc, exceptions, output, tags)",
        f"{tmp_path}/rules.yaml:15:11: rule 'r1': output: not listed in override "
        "(add `output: append` or `output: replace`)",
    ]


@pytest.mark.parametrize(
    "cond,col,message",
    [
        (
            'proc.name = "bash"',
            15,
            "condition: syntax error (illegal character '=') near '= \"bash\"' (use == to compare)",
        ),
        (
            'proc.name contains "x"',
            15,
            "Falco's 'contains' operator is not in ringwatch's syntax: write `\"text\" in field`",
        ),
        ("evt.type == execve", 17, "unknown name 'execve': a string value needs quotes: \"execve\""),
        ("proc.name exists", 15,
         "Falco's 'exists' operator is not in ringwatch's syntax: write `field != null`"),
    ],
)
def test_falco_habits_get_a_hint(tmp_path: Path, cond: str, col: int, message: str) -> None:
    text = f"- rule: r\n  condition: |-\n    {cond}\n  output: o\n  priority: INFO\n"
    msg = only(problems_of(tmp_path, text))
    assert msg.startswith(f"{tmp_path}/rules.yaml:3:{col}: rule 'r': {message}")
