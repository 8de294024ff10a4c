"""Helpers for the rules tests: rules written to files, loaded without the system directories."""

from __future__ import annotations

import textwrap
from pathlib import Path

from monitor.events.catalog import FIELD_TYPES
from monitor.paths import rules_dir
from monitor.rules import RuleSet, RuleSources, check, load
from monitor.rules.problems import Problem

# A fixed copy of the first, exec-only default ruleset: the packaged rules/default.yaml
# grows with syscall coverage, and these tests pin the engine, not that file's content.
EXEC_RULES = Path(__file__).resolve().parent / "fixtures" / "exec_rules.yaml"


def default_rules() -> RuleSources:
    return sources(EXEC_RULES)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def sources(*paths: Path, defaults: bool = False) -> RuleSources:
    # system_dir=None: a host's /etc/ringwatch/rules.d must not change test results.
    return RuleSources(paths=tuple(paths), defaults=defaults, default_dir=rules_dir(), system_dir=None,
                       fields=FIELD_TYPES)


def load_text(tmp_path: Path, text: str, name: str = "rules.yaml") -> RuleSet:
    return load(sources(write(tmp_path, name, text)))


def problems_of(tmp_path: Path, text: str, name: str = "rules.yaml") -> list[Problem]:
    ruleset, problems = check(sources(write(tmp_path, name, text)))
    assert ruleset is None, "expected the rules to fail to load"
    return problems


def exec_event(**fields: object) -> dict[str, object]:
    ev: dict[str, object] = {
        "evt.type": "execve",
        "evt.failed": False,
        "evt.time": "2026-01-01T00:00:00.000000000Z",
        "proc.pid": 100,
        "proc.ppid": 1,
        "proc.name": "bash",
        "proc.exe": "/bin/bash",
        "proc.argv": ["bash"],
        "proc.args": "",
        "proc.cmdline": "bash",
        "user.uid": 0,
        "user.name": "root",
    }
    ev.update({k.replace("__", "."): v for k, v in fields.items()})
    return ev
