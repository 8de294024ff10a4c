"""Pipeline stage 4a, judge deny records: the kernel decided; name the rule and raise its alert.

Every enforcement record is handled here and only here: deny/audit rules are never
evaluated again in userspace (monitor.rules.judge skips them).
"""

from __future__ import annotations

from monitor.enforce.enforcer import Enforcer
from monitor.kernel.records import DenyRecord
from monitor.stage import Item


class EnforceVerdicts:
    name = "judge.enforce"

    def __init__(self, enforcer: Enforcer) -> None:
        self.enforcer = enforcer

    def __call__(self, item: Item) -> None:
        rec = item.record
        if not isinstance(rec, DenyRecord):
            return
        item.event["enforce.rule"] = self.enforcer.rule_name(rec.rule_id)
        item.alerts.append(self.enforcer.alert(rec, item.complete()))
