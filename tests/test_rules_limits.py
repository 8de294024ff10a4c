"""Bounds on the work a rules load may cause: macro and list bombs, deep nesting, time."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from monitor.rules import check
from monitor.rules.limits import Limits
from tests.rules_util import EXEC_RULES, sources

RULE = "- rule: {name}\n  desc: d\n  condition: {cond}\n  output: x\n  priority: INFO\n"


def macro_bomb(levels: int = 25) -> str:
    """Each macro uses the previous one twice: m25 would be 2**25 copies of m0."""
    out = ['- macro: m0\n  condition: proc.name == "a"\n']
    out += [f"- macro: m{i}\n  condition: m{i - 1} or m{i - 1}\n" for i in range(1, levels + 1)]
    return "".join(out) + RULE.format(name="boom", cond=f"m{levels}")


def test_a_macro_bomb_stops_at_the_size_bound_and_names_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(macro_bomb())
    tracemalloc.start()
    ruleset, problems = check(sources(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ruleset is None
    text = [str(p) for p in problems]
    assert text[0] == (f"{path}:28:21: macro 'm13': expands to more than 131072 characters "
                       "(at 'm12': macros or lists used many times over?)")
    assert text[-1] == f"{path}:55:14: rule 'boom': uses macro 'm25', which has errors"
    # Unbounded, m25 alone is 2**25 * 20 characters (600 MB measured); bounded, a few MB.
    assert peak < 64 * 1024 * 1024, peak


def test_a_smaller_bound_applies(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(macro_bomb(8))
    _, problems = check(sources(path), limits=Limits(max_expanded_chars=1000))
    assert problems[0].item == "macro 'm6'" and "more than 1000 characters" in problems[0].message


def test_the_total_of_all_expansions_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    big = " or ".join(f'proc.name == "n{i}"' for i in range(40))
    path.write_text("- macro: big\n  condition: " + big + "\n"
                    + "".join(RULE.format(name=f"r{i}", cond="big") for i in range(20)))
    _, problems = check(sources(path), limits=Limits(max_total_chars=10_000))
    assert problems and "all conditions together expand to more than 10000 characters" in problems[0].message
    assert problems[0].item.startswith("rule 'r")


def test_a_list_bomb_stops_at_the_item_bound(tmp_path: Path) -> None:
    lists = ["- list: l0\n  items: [aaaaaaaa, bbbbbbbbbb]\n"]
    lists += [f"- list: l{i}\n  items: [l{i - 1}, l{i - 1}]\n" for i in range(1, 30)]
    path = tmp_path / "lists.yaml"
    path.write_text("".join(lists) + RULE.format(name="lboom", cond="proc.name in (l29)"))
    _, problems = check(sources(path))
    assert [str(p) for p in problems] == [
        f"{path}:63:28: rule 'lboom': list 'l16' has more than 65536 items "
        "once the lists inside it are expanded"
    ]


def test_deep_brackets_are_refused_before_rule_engine_recurses(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(RULE.format(name="p", cond="(" * 3000 + 'proc.name == "a"' + ")" * 3000))
    _, problems = check(sources(path))
    assert [str(p) for p in problems] == [
        f"{path}:3:14: rule 'p': brackets nested 3000 deep once macros are expanded (at most 100)"
    ]


def test_macros_nested_deeper_than_the_bound_stop_the_expander(tmp_path: Path) -> None:
    # Defined outermost first, so expanding d1999 recurses through every level; with
    # the nesting bound raised, only the depth bound keeps this from a RecursionError.
    out = [f"- macro: d{i}\n  condition: d{i - 1}\n" for i in range(1999, 0, -1)]
    out.append('- macro: d0\n  condition: proc.name == "a"\n')
    path = tmp_path / "chain.yaml"
    path.write_text("".join(out) + RULE.format(name="chain", cond="d1999"))
    _, problems = check(sources(path), limits=Limits(max_nesting=10_000))
    assert any("macros nested more than 64 deep" in p.message for p in problems)
    assert str(problems[-1]).endswith("rule 'chain': uses macro 'd1999', which has errors")


def test_the_time_bound_stops_the_load_naming_where(tmp_path: Path) -> None:
    _, problems = check(sources(EXEC_RULES), limits=Limits(max_compile_s=0))
    assert len(problems) == 1
    assert problems[0].message == "compiling the rules took more than 0 s; stopped here"
    assert problems[0].item.startswith(("macro '", "rule '"))


def test_a_file_over_the_size_bound_is_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("- list: l\n  items: [" + "x, " * 5000 + "]\n")
    _, problems = check(sources(path), limits=Limits(max_file_bytes=1000))
    assert [str(p) for p in problems] == [f"{path}:1:1: rules file larger than 1000 bytes"]


def test_the_packaged_rules_are_well_inside_the_defaults() -> None:
    ruleset, problems = check(sources(EXEC_RULES, defaults=True))
    assert problems == [] and ruleset is not None
