"""Pipeline stage 4b, judge: the loaded alerting rules evaluated on the event."""

from __future__ import annotations

from monitor.rules.ruleset import RuleSet
from monitor.stage import Item

# Decided by the kernel's LSM programs and reported from their records (monitor.enforce.stage).
KERNEL_ACTIONS = ("deny", "audit")


class RulesJudge:
    name = "judge.rules"

    def __init__(self, rules: RuleSet) -> None:
        # Replaced whole by a reload; a record sees either the old rules or the new.
        self.rules = rules

    def __call__(self, item: Item) -> None:
        for alert in self.rules.alerts(item.event):
            if alert.action not in KERNEL_ACTIONS:
                item.alerts.append(alert.to_dict())
