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
        if item.event.get("evt.count_only"):
            return  # repeats of an event the rules saw already (kernel coalescing)
        rules = self.rules
        hits = rules.matching(item.event)
        if not hits:
            return
        # The conditions read only what the event holds; an alert carries every field.
        for alert in rules.alerts_for(item.complete(), hits):
            if alert.action not in KERNEL_ACTIONS:
                item.alerts.append(alert.to_dict())
