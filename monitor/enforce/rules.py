"""The deny/audit rules of a RuleSet as DenySpecs, with what their alerts need."""

from __future__ import annotations

from typing import Any

from monitor.enforce.enforcer import RuleMeta
from monitor.enforce.spec import DenySpec, Mode
from monitor.enforce.translate import translate_rules

ACTIONS = ("deny", "audit")


def deny_specs(ruleset: Any, mode: str) -> tuple[list[DenySpec], dict[str, RuleMeta]]:
    """Translate every enabled deny/audit rule; TranslateError lists all that cannot be."""
    rules = [r for action in ACTIONS for r in ruleset.rules_with_action(action)]
    rules.sort(key=lambda r: (r.file, r.line))
    specs = translate_rules(rules, ruleset.field_of, Mode(mode))
    meta = {r.name: RuleMeta(priority=r.priority, tags=tuple(r.tags), output=r.output.render)
            for r in rules}
    return specs, meta
