"""Finds rules files in load order and turns them into a RuleSet, or every error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor import safefile
from monitor.rules.limits import DEFAULT_LIMITS, Limits
from monitor.rules.names import FieldNames
from monitor.rules.problems import Loc, Problem, RulesError
from monitor.rules.ruleset import RuleSet, compile_definitions
from monitor.rules.schema import Merger
from monitor.rules.yamlsrc import parse_file_info

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
    # Load files (system_dir and paths) that non-root could have written: development only.
    allow_unsafe: bool = False
    # The fields the event source provides, name -> Python type: the only fields rules
    # may name. The engine has none of its own (ringwatch's come from its event catalogue).
    fields: Mapping[str, type] = field(default_factory=dict)


def _dir_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())


def _unsafe(path: Path, what: str) -> Problem | None:
    reason = safefile.unsafe_reason(path)
    if reason is None:
        return None
    return Problem(Loc(str(path), 1, 1), "", safefile.refusal(path, what, reason).split(": ", 1)[1])


def _checked(paths: list[Path], what: str, sources: RuleSources,
             problems: list[Problem]) -> list[Path]:
    """`paths` without the unsafe ones, each of which adds a problem (unless allowed)."""
    if sources.allow_unsafe:
        return paths
    found = [(p, _unsafe(p, what)) for p in paths]
    problems += [bad for _, bad in found if bad is not None]
    return [p for p, bad in found if bad is None]


def rule_files(sources: RuleSources) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    # The packaged defaults are part of the installed code: trusted as the code is.
    if sources.defaults and sources.default_dir is not None and sources.default_dir.is_dir():
        files += _dir_files(sources.default_dir)

    def directory(d: Path) -> list[Path]:
        # A directory anyone may write to lets them add a file; each file is checked too.
        if not _checked([d], "rules directory", sources, problems):
            return []
        return _checked(_dir_files(d), "rules file", sources, problems)

    if sources.system_dir is not None and sources.system_dir.is_dir():
        files += directory(sources.system_dir)
    for path in sources.paths:
        if path.is_dir():
            files += directory(path)
        elif path.exists():
            files += _checked([path], "rules file", sources, problems)
        else:
            problems.append(Problem(Loc(str(path), 1, 1), "", "no such rules file or directory"))
    return files, problems


def check(sources: RuleSources, names: FieldNames | None = None,
          limits: Limits = DEFAULT_LIMITS) -> tuple[RuleSet | None, list[Problem]]:
    """The RuleSet, or None and every problem found in every file."""
    files, problems = rule_files(sources)
    merger = Merger()
    for path in files:
        items, file_problems, info = parse_file_info(path, limits.max_file_bytes)
        problems += file_problems
        for plugin in info.plugins:
            # Falco's plugins supply fields (container.*, k8s.*); rules needing them are skipped.
            merger.defs.warnings.append(Problem(Loc(str(path), 1, 1), "",
                                                f"required plugin {plugin!r}: ringwatch has no plugins; "
                                                "rules that need its fields are skipped"))
        merger.add_file(str(path), items)
    problems += merger.problems
    # Compile what did merge even after errors, so one run reports every problem.
    names = names or FieldNames.from_types(sources.fields)
    ruleset, compile_problems = compile_definitions(merger.defs, names, limits=limits)
    problems += compile_problems
    return (None, problems) if problems else (ruleset, [])


def load(sources: RuleSources, names: FieldNames | None = None, limits: Limits = DEFAULT_LIMITS) -> RuleSet:
    ruleset, problems = check(sources, names, limits)
    if ruleset is None:
        raise RulesError(problems)
    return ruleset
