"""Hostile rules and config text: every failure is one located line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import config
from monitor.errors import ConfigError
from monitor.rules import check
from tests.monitor_proc import REPO
from tests.rules_util import sources, write

GOOD = """\
- rule: r
  desc: "DESC"
  condition: proc.name == "x"
  output: "x"
  priority: NOTICE
"""


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x0c", "\x7f", "\ufffe"])
def test_a_control_character_even_quoted_is_a_located_problem(tmp_path: Path, char: str) -> None:
    path = write(tmp_path, "r.yaml", GOOD.replace("DESC", f"a{char}b"))
    ruleset, problems = check(sources(path))
    assert ruleset is None
    assert [str(p) for p in problems] == [
        f"{path}:2:11: invalid YAML: control character #x{ord(char):04x} is not allowed in YAML "
        '(even quoted); write it as an escape in a double-quoted string, e.g. "\\x1b"'
    ]


def test_an_escaped_control_character_is_fine(tmp_path: Path) -> None:
    ruleset, problems = check(sources(write(tmp_path, "r.yaml", GOOD.replace("DESC", "a\\x1bb"))))
    assert problems == [] and ruleset is not None
    assert ruleset.rules[0].desc == "a\x1bb"


def test_rules_validate_reports_a_nul_in_one_line_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD.replace("DESC", "a\x00b"))
    cmd = [sys.executable, "-m", "monitor", "rules", "validate", "--no-default-rules", str(path)]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines()[0].startswith(f"{path}:2:11: invalid YAML: control character #x0000")


def test_deep_nesting_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("- " + "[" * 5000 + "]" * 5000 + "\n")
    _, problems = check(sources(path))
    assert [str(p) for p in problems] == [f"{path}:1:1: invalid YAML: nested too deeply"]


def test_a_value_the_constructor_refuses_points_at_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD.replace('"DESC"', "2020-13-45"))
    _, problems = check(sources(path))
    assert [str(p) for p in problems] == [f"{path}:2:9: invalid YAML: bad value: month must be in 1..12"]


def test_a_rule_defined_twice_in_one_file_is_an_error_with_both_places(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD + GOOD.replace('"x"', '"y"'))
    _, problems = check(sources(path))
    assert [str(p) for p in problems] == [
        f"{path}:6:3: rule 'r': defined twice in this file, first at {path}:1:3 "
        "(to change it, use override: in a later file)"
    ]


def test_lists_and_macros_defined_twice_in_one_file_too(tmp_path: Path) -> None:
    text = "- list: l\n  items: [a]\n- macro: m\n  condition: proc.name in (l)\n" \
           "- list: l\n  items: [b]\n- macro: m\n  condition: proc.name == \"b\"\n"
    _, problems = check(sources(write(tmp_path, "r.yaml", text)))
    assert [p.message.split(",")[0] for p in problems] == ["defined twice in this file"] * 2
    assert [p.item for p in problems] == ["list 'l'", "macro 'm'"]


def test_a_later_file_still_replaces_a_rule_and_enabled_switches_it(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", GOOD.replace('"x"', '"y"') + "- rule: r\n  enabled: false\n")
    ruleset, problems = check(sources(first, second))
    assert problems == [] and ruleset is not None
    assert ruleset.rules[0].source_condition == 'proc.name == "y"' and not ruleset.rules[0].enabled


def test_a_bad_regex_names_the_pattern_and_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD.replace('proc.name == "x"', 'proc.name =~ "(ab"'))
    _, problems = check(sources(path))
    assert [str(p) for p in problems] == [
        f"{path}:3:28: rule 'r': condition: invalid regular expression '(ab': "
        "missing ), unterminated subpattern at position 0"
    ]


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"sensor:\n  btf_path: \xff\xfe\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value) == f"{path}: cannot read config: not UTF-8 text (byte 0xff at offset 20)"


def test_a_control_character_in_the_config_is_located(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("sensor:\n  btf_path: '\x1b'\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}:2:14: invalid YAML: control character #x001b")


def test_run_with_a_non_utf8_config_exits_2_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\n")
    res = subprocess.run([sys.executable, "-m", "monitor", "run", "--config", str(path), "--duration", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [f"ringwatch: {path}: cannot read config: not UTF-8 text "
                                       "(byte 0xff at offset 0)"]


def test_run_with_a_control_character_in_its_rules_exits_2_in_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD.replace("DESC", "a\x0cb"))
    res = subprocess.run([sys.executable, "-m", "monitor", "run", "--no-default-rules", "--rules", str(path),
                          "--duration", "0", "--control-socket", f"/run/rw-hostile-{os.getpid()}.sock"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "RINGWATCH_RULES_D": "/nonexistent/rules.d"})
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert f"  {path}:2:11: invalid YAML: control character #x000c is not allowed" in res.stderr
