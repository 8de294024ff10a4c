"""Lists, macros, exceptions, overrides, load order, and missing-field behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.events.catalog import FIELD_TYPES
from monitor.rules import RulesError, RuleSources, load
from monitor.rules.condition import literal_prefix, quote, unquote
from tests.rules_util import default_rules, exec_event, load_text, problems_of, sources, write

RULE = """
- rule: r
  condition: |-
    {cond}
  output: o
  priority: INFO
"""


def fires(tmp_path: Path, cond: str, event: dict[str, object], extra: str = "") -> bool:
    rs = load_text(tmp_path, extra + RULE.format(cond=cond))
    return [r.name for r in rs.matching(event)] == ["r"]


def names(rs, event) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.name for r in rs.matching(event)]


def test_list_in_condition_and_nested_list(tmp_path: Path) -> None:
    lists = """
- list: shells
  items: [bash, sh]
- list: all_shells
  items: [shells, zsh]
"""
    assert fires(tmp_path, "proc.name in all_shells", exec_event(proc__name="sh"), lists)
    assert fires(tmp_path, "proc.name in all_shells", exec_event(proc__name="zsh"), lists)
    assert not fires(tmp_path, "proc.name in all_shells", exec_event(proc__name="ls"), lists)
    rs = load_text(tmp_path, lists + RULE.format(cond="proc.name in all_shells"))
    assert rs.rules[0].condition == 'proc.name in ["bash", "sh", "zsh"]'


def test_numeric_list(tmp_path: Path) -> None:
    lists = "- list: ids\n  items: [0, 33]\n"
    assert fires(tmp_path, "user.uid in ids", exec_event(user__uid=33), lists)
    assert not fires(tmp_path, "user.uid in ids", exec_event(user__uid=34), lists)


def test_macros_nest_and_expand(tmp_path: Path) -> None:
    macros = """
- macro: spawned
  condition: evt.type == "execve"
- macro: root_spawn
  condition: spawned and user.uid == 0
"""
    assert fires(tmp_path, "root_spawn and proc.name == 'bash'", exec_event(), macros)
    assert not fires(tmp_path, "root_spawn", exec_event(user__uid=5), macros)
    rs = load_text(tmp_path, macros + RULE.format(cond="root_spawn"))
    assert rs.rules[0].condition == '((evt.type == "execve") and user.uid == 0)'


def test_strings_and_comments_are_not_rewritten(tmp_path: Path) -> None:
    cond = '"proc.nope and shells" != proc.name # proc.bogus in a comment'
    assert fires(tmp_path, cond, exec_event())


def test_attribute_after_field_and_comprehension(tmp_path: Path) -> None:
    assert fires(tmp_path, 'proc.name.as_upper == "BASH"', exec_event())
    cond = '[a for a in proc.argv if a == "-e"]'
    assert fires(tmp_path, cond, exec_event(proc__argv=["nc", "-e", "/bin/sh"]))
    assert not fires(tmp_path, cond, exec_event(proc__argv=["nc", "-l"]))


def test_startswith_endswith(tmp_path: Path) -> None:
    assert fires(tmp_path, 'proc.exe startswith "/tmp/"', exec_event(proc__exe="/tmp/x"))
    assert not fires(tmp_path, 'proc.exe startswith "/tmp/"', exec_event(proc__exe="/var/tmp/x"))
    # Regex characters in the prefix are literal.
    assert not fires(tmp_path, 'proc.exe startswith "/a.b"', exec_event(proc__exe="/aXb"))
    assert fires(tmp_path, 'proc.exe endswith ".sh"', exec_event(proc__exe="/x/run.sh"))
    assert not fires(tmp_path, 'proc.exe endswith ".sh"', exec_event(proc__exe="/x/run.shx"))
    rs = load_text(tmp_path, RULE.format(cond='proc.exe startswith "/dev/shm/"'))
    assert rs.rules[0].condition == 'proc.exe =~ "^/dev/shm/"'


def test_literal_prefix_for_enforcement() -> None:
    assert literal_prefix("^/tmp/") == "/tmp/"
    assert literal_prefix("^/a\\.b/.*") == "/a.b/"
    assert literal_prefix("^/tmp/[a-z]") is None
    assert literal_prefix("/tmp/") is None
    assert literal_prefix("^\\d") is None


@pytest.mark.parametrize("value", ["plain", 'quo"te', "back\\slash", "new\nline", "ünï", "\\n literal"])
def test_quote_roundtrip(value: str) -> None:
    assert unquote(quote(value)) == value


def test_quoted_list_items_reach_rule_engine_intact(tmp_path: Path) -> None:
    lists = '- list: odd\n  items: [\'a"b\', "c\\\\d"]\n'
    assert fires(tmp_path, "proc.name in odd", exec_event(proc__name='a"b'), lists)
    assert fires(tmp_path, "proc.name in odd", exec_event(proc__name="c\\d"), lists)


def test_missing_field_comparisons_are_false_and_never_raise(tmp_path: Path) -> None:
    ev = {"evt.type": "execve"}
    for cond in (
        "user.uid < 1000",
        'proc.aname[3] == "x"',
        '"x" in proc.aname',
        'proc.exe =~ "^/tmp"',
        'proc.name in ["a"]',
        'proc.name == "bash"',
    ):
        rs = load_text(tmp_path, RULE.format(cond=cond))
        assert names(rs, ev) == [], cond
        assert rs.rules[0].stats.errors == 0, cond
    # Negated comparisons are comparisons too: false on a missing field.
    for cond in ('proc.pname != "sshd"', 'proc.pname !~ "^ss"', 'proc.pname !~~ "sh"', "user.uid != 0"):
        rs = load_text(tmp_path, RULE.format(cond=cond))
        assert names(rs, ev) == [], cond
        assert names(rs, exec_event(proc__pname="cron", user__uid=5)) == ["r"], cond
    # Testing for a missing field: compare with null.
    assert fires(tmp_path, "proc.pname == null", ev)
    assert not fires(tmp_path, "proc.pname != null", ev)
    assert fires(tmp_path, "proc.pname != null", exec_event(proc__pname="x"))
    # Under `not`, the false comparison is negated (as in Falco).
    assert fires(tmp_path, "not (user.uid < 1000)", ev)
    # An index past the end of a present list is missing too.
    assert not fires(tmp_path, 'proc.aname[3] == "x"', exec_event(proc__aname=["a"]))


def test_runtime_type_error_is_a_false_comparison(tmp_path: Path) -> None:
    # A clash rule-engine cannot see at load time (the string is not a number) is false.
    rs = load_text(tmp_path, RULE.format(cond='proc.args.to_int == 1 or proc.name == "x"'))
    assert names(rs, exec_event(proc__args="notanumber")) == []
    assert names(rs, exec_event(proc__args="1")) == ["r"]


EXC_RULE = """
- list: trusted
  items: [cron, sshd]
- rule: r
  condition: evt.type == "execve"
  output: o
  priority: INFO
  exceptions:
{exc}
"""


def exc_fires(tmp_path: Path, exc: str, **fields: object) -> bool:
    rs = load_text(tmp_path, EXC_RULE.format(exc=exc))
    return names(rs, exec_event(**fields)) == ["r"]


def test_exception_tuple_form(tmp_path: Path) -> None:
    exc = """
    - name: known
      fields: [proc.name, proc.pname]
      comps: [=, in]
      values:
        - [bash, [cron, sshd]]
        - [sh, trusted]
"""
    assert not exc_fires(tmp_path, exc, proc__name="bash", proc__pname="sshd")
    assert not exc_fires(tmp_path, exc, proc__name="sh", proc__pname="cron")
    assert exc_fires(tmp_path, exc, proc__name="bash", proc__pname="nginx")
    assert exc_fires(tmp_path, exc, proc__name="zsh", proc__pname="sshd")


def test_exception_single_field_form_default_in(tmp_path: Path) -> None:
    exc = """
    - name: known
      fields: proc.name
      values: [bash, ls]
"""
    assert not exc_fires(tmp_path, exc, proc__name="ls")
    assert exc_fires(tmp_path, exc, proc__name="cat")


def test_exception_comparators(tmp_path: Path) -> None:
    exc = """
    - name: e
      fields: [proc.exe, user.uid, proc.aname, proc.cmdline]
      comps: [startswith, "<", contains, endswith]
      values:
        - [/usr/lib/, 100, systemd, --quiet]
"""
    match = {
        "proc__exe": "/usr/lib/x",
        "user__uid": 5,
        "proc__aname": ["init", "systemd"],
        "proc__cmdline": "x --quiet",
    }
    assert not exc_fires(tmp_path, exc, **match)
    assert exc_fires(tmp_path, exc, **{**match, "proc__exe": "/usr/libx"})
    assert exc_fires(tmp_path, exc, **{**match, "user__uid": 100})
    assert exc_fires(tmp_path, exc, **{**match, "proc__aname": ["init"]})
    assert exc_fires(tmp_path, exc, **{**match, "proc__cmdline": "x --quiet2"})
    # A missing field makes the exception not apply: the rule still fires.
    ev = exec_event(**match)
    del ev["user.uid"]
    rs = load_text(tmp_path, EXC_RULE.format(exc=exc))
    assert names(rs, ev) == ["r"]


def test_exception_without_values_changes_nothing(tmp_path: Path) -> None:
    exc = "    - name: later\n      fields: [proc.name]\n"
    assert exc_fires(tmp_path, exc, proc__name="bash")


BASE = """
- list: shells
  items: [bash]
- macro: is_shell
  condition: proc.name in shells
- rule: shell
  desc: a shell
  condition: evt.type == "execve" and is_shell
  output: "shell %proc.name"
  priority: WARNING
  tags: [a]
  exceptions:
    - name: users
      fields: [user.name]
      values: [[alice]]
"""


def two_files(tmp_path: Path, second: str) -> object:
    a = write(tmp_path, "a.yaml", BASE)
    b = write(tmp_path, "b.yaml", second)
    return load(sources(a, b))


def test_list_append_in_later_file_reaches_earlier_rule(tmp_path: Path) -> None:
    rs = two_files(tmp_path, "- list: shells\n  items: [zsh]\n  override: {items: append}\n")
    assert names(rs, exec_event(proc__name="zsh")) == ["shell"]
    assert names(rs, exec_event(proc__name="bash")) == ["shell"]


def test_list_replace_and_legacy_append(tmp_path: Path) -> None:
    rs = two_files(tmp_path, "- list: shells\n  items: [zsh]\n  override: {items: replace}\n")
    assert names(rs, exec_event(proc__name="bash")) == []
    rs = two_files(tmp_path, "- list: shells\n  items: [zsh]\n  append: true\n")
    assert names(rs, exec_event(proc__name="bash")) == ["shell"]
    assert names(rs, exec_event(proc__name="zsh")) == ["shell"]


def test_macro_override(tmp_path: Path) -> None:
    rs = two_files(
        tmp_path, "- macro: is_shell\n  condition: and user.uid != 0\n  override: {condition: append}\n"
    )
    assert names(rs, exec_event(user__uid=0)) == []
    assert names(rs, exec_event(user__uid=7)) == ["shell"]
    rs = two_files(
        tmp_path, "- macro: is_shell\n  condition: proc.name == 'ls'\n  override: {condition: replace}\n"
    )
    assert names(rs, exec_event()) == []
    assert names(rs, exec_event(proc__name="ls")) == ["shell"]


def test_rule_overrides(tmp_path: Path) -> None:
    second = """
- rule: shell
  condition: and user.uid == 0
  output: "root shell %proc.name"
  priority: critical
  tags: [b]
  exceptions:
    - name: users
      values: [[bob]]
  override:
    condition: append
    output: replace
    priority: replace
    tags: append
    exceptions: append
"""
    rs = two_files(tmp_path, second)
    (rule,) = rs.rules
    assert rule.priority == "CRITICAL" and rule.tags == ("a", "b")
    assert names(rs, exec_event(user__uid=0, user__name="root")) == ["shell"]
    assert names(rs, exec_event(user__uid=5, user__name="eve")) == []
    assert names(rs, exec_event(user__uid=0, user__name="alice")) == []
    assert names(rs, exec_event(user__uid=0, user__name="bob")) == []
    (alert,) = rs.alerts(exec_event())
    assert alert.output == "root shell bash"


def test_appended_condition_errors_point_into_the_second_file(tmp_path: Path) -> None:
    from monitor.rules import check

    a = write(tmp_path, "a.yaml", BASE)
    b = write(
        tmp_path, "b.yaml", "- rule: shell\n  condition: and proc.nam == 1\n  override: {condition: append}\n"
    )
    _, problems = check(sources(a, b))
    assert [str(p) for p in problems] == [
        f"{b}:2:18: rule 'shell': unknown field 'proc.nam' (did you mean 'proc.name'?)"
    ]


def test_enabled_toggle_and_redefinition(tmp_path: Path) -> None:
    rs = two_files(tmp_path, "- rule: shell\n  enabled: false\n")
    assert not rs.rules[0].enabled
    assert names(rs, exec_event()) == []
    assert rs.event_types() == set()
    rs = two_files(
        tmp_path, '- rule: shell\n  condition: proc.name == "ls"\n  output: o\n  priority: DEBUG\n'
    )
    (rule,) = rs.rules
    assert (
        rule.priority == "DEBUG" and rule.tags == () and names(rs, exec_event(proc__name="ls")) == ["shell"]
    )


def test_load_order_defaults_then_system_then_paths(tmp_path: Path) -> None:
    d, s = tmp_path / "defaults", tmp_path / "system"
    d.mkdir()
    s.mkdir()
    write(d, "default.yaml", "- list: who\n  items: [a]\n" + RULE.format(cond="proc.name in who"))
    # Sorted within a directory: 10 before 20.
    write(s, "20-late.yaml", "- list: who\n  items: [c]\n  override: {items: append}\n")
    write(s, "10-early.yaml", "- list: who\n  items: [b]\n  override: {items: replace}\n")
    write(s, "ignored.txt", "not yaml at all: [")
    last = write(tmp_path, "cli.yaml", "- list: who\n  items: [d]\n  override: {items: append}\n")
    rs = load(RuleSources(paths=(last,), default_dir=d, system_dir=s, fields=FIELD_TYPES))
    assert rs.rules[0].condition == 'proc.name in ["b", "c", "d"]'
    assert rs.files == [str(d / "default.yaml"), str(s / "10-early.yaml"), str(s / "20-late.yaml"), str(last)]
    # Without the defaults, the override has nothing to override.
    with pytest.raises(RulesError, match="list 'who': overrides a list that no earlier file defines"):
        load(RuleSources(paths=(last,), defaults=False, default_dir=d, system_dir=None, fields=FIELD_TYPES))


DIFFERENTIAL = [
    'evt.type == "execve" and proc.name in ["bash", "sh"]',
    "user.uid > 0 and user.uid < 1000",
    'not ("-c" in proc.argv) or proc.args =~~ "-e"',
    'proc.name != "bash" and proc.exe !~ "^/tmp/" and user.uid != 33 and proc.args !~~ "c"',
    '[a for a in proc.aname if a in ["nginx", "sshd"]] and proc.apid[0] == 50',
    '"ngin" in proc.pname or proc.exe startswith "/tmp/"',
    "proc.argv_truncated == false and evt.failed == true",
    '1 in proc.apid or proc.pid % 2 == 0 and proc.name.as_upper == "SH"',
]


@pytest.mark.parametrize("cond", DIFFERENTIAL)
def test_fast_evaluation_agrees_with_rule_engine(tmp_path: Path, cond: str) -> None:
    """The evaluation-only rewrites (direct field reads, frozenset membership, null
    guards) give rule-engine's own answer whenever every field is present."""
    rs = load_text(tmp_path, RULE.format(cond=cond))
    (rule,) = rs.rules
    seen = set()
    for name in ("bash", "sh", "ls"):
        for uid in (0, 33, 1000):
            for argv in (["x"], ["x", "-c", "y"], ["x", "-e"]):
                for aname, apid in ((["nginx", "init"], [50, 1]), (["cron"], [2])):
                    ev = exec_event(
                        proc__name=name,
                        user__uid=uid,
                        proc__argv=argv,
                        proc__args=" ".join(argv[1:]),
                        proc__aname=aname,
                        proc__apid=apid,
                        proc__pname=aname[0],
                        proc__pid=uid + 1,
                        proc__exe=f"/tmp/{name}" if uid == 33 else f"/bin/{name}",
                        proc__argv_truncated=False,
                        evt__failed=uid == 0,
                    )
                    expected = bool(rule.ast.evaluate(ev))
                    assert rule.matches(ev) == expected, ev
                    seen.add(expected)
    assert seen == {True, False}, "the events must exercise both outcomes"


def test_wrongly_typed_values_never_raise() -> None:
    """Replayed files are input: any value in any field must not break evaluation or alerts."""
    from monitor.events.catalog import FIELDS

    rs = load(default_rules())
    bad_values: list[object] = ["x", 5, None, [1, "a"], {"a": 1}, True, 1.5]
    base = exec_event(proc__name="nc", proc__argv=["nc", "-e", "/bin/sh"], proc__pname="nginx")
    assert [r.name for r in rs.matching(base)] == ["Netcat remote code execution"]
    for field in FIELDS:
        for value in bad_values:
            ev = dict(base, **{field: value})
            for alert in rs.alerts(ev):
                alert.to_dict()
    assert all(s["errors"] == 0 for s in rs.stats().values())


def test_packaged_rules_dir_is_loaded_first_by_default() -> None:
    """The packaged ruleset, whatever it holds today, loads cleanly and first."""
    from monitor import config, paths

    PACKAGE_RULES_DIR = paths.rules_dir()
    assert config.rule_sources().default_dir == PACKAGE_RULES_DIR
    rs = load(RuleSources(default_dir=PACKAGE_RULES_DIR, fields=FIELD_TYPES))
    assert str(PACKAGE_RULES_DIR / "default.yaml") in rs.files
    assert all(Path(f).parent == PACKAGE_RULES_DIR for f in rs.files)
    assert rs.rules


def test_startswith_a_list(tmp_path: Path) -> None:
    lists = "- list: dirs\n  items: [/tmp/, /var/tmp/, /a.b/]\n"
    cond = "proc.exe startswith dirs"
    assert fires(tmp_path, cond, exec_event(proc__exe="/var/tmp/x"), lists)
    assert fires(tmp_path, cond, exec_event(proc__exe="/a.b/x"), lists)
    assert not fires(tmp_path, cond, exec_event(proc__exe="/aXb/x"), lists)
    assert not fires(tmp_path, cond, exec_event(proc__exe="/usr/tmp/x"), lists)
    assert fires(tmp_path, "proc.exe endswith dirs", exec_event(proc__exe="/x/tmp/"), lists)
    rs = load_text(tmp_path, lists + RULE.format(cond=cond))
    assert rs.rules[0].condition == 'proc.exe =~ "^(?:/tmp/|/var/tmp/|/a\\\\.b/)"'
    bad = problems_of(tmp_path, "- list: nums\n  items: [1]\n" + RULE.format(cond="proc.exe startswith nums"))
    assert [p.message for p in bad] == ["startswith nums: the list must hold strings, at least one"]
