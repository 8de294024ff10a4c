"""Finds rules files in load order and turns them into a RuleSet, or every error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.rules.limits import DEFAULT_LIMITS, Limits
from monitor.rules.names import FieldNames
from monitor.rules.problems import Loc, Problem, RulesError
from monitor.rules.ruleset import RuleSet, compile_definitions
from monitor.rules.schema import Merger
from monitor.rules.yamlsrc import parse_file

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RuleSources:
    """Where rules come from, in load order: package defaults, system dir, then `paths`.

    The engine knows no application paths: the caller names both directories
    (monitor.config.rule_sources does for ringwatch).
    """

    paths: tuple[Path, ...] = ()
    defaults: bool = True
    default_dir: Path | None = None
    system_dir: Path | None = None


def _dir_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())


def rule_files(sources: RuleSources) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    if sources.defaults and sources.default_dir is not None and sources.default_dir.is_dir():
        files += _dir_files(sources.default_dir)
    if sources.system_dir is not None and sources.system_dir.is_dir():
        files += _dir_files(sources.system_dir)
    for path in sources.paths:
        if path.is_dir():
            files += _dir_files(path)
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem(Loc(str(path), 1, 1), "", "no such rules file or directory"))
    return files, problems


def check(sources: RuleSources, names: FieldNames | None = None,
          limits: Limits = DEFAULT_LIMITS) -> tuple[RuleSet | None, list[Problem]]:
    """The RuleSet, or None and every problem found in every file."""
    files, problems = rule_files(sources)
    merger = Merger()
    for path in files:
        items, file_problems = parse_file(path, limits.max_file_bytes)
        problems += file_problems
        merger.add_file(str(path), items)
    problems += merger.problems
    # Compile what did merge even after errors, so one run reports every problem.
    ruleset, compile_problems = compile_definitions(merger.defs, names, limits=limits)
    problems += compile_problems
    return (None, problems) if problems else (ruleset, [])


def load(sources: RuleSources, names: FieldNames | None = None, limits: Limits = DEFAULT_LIMITS) -> RuleSet:
    ruleset, problems = check(sources, names, limits)
    if ruleset is None:
        raise RulesError(problems)
    return ruleset
