"""The pipeline: decode -> lineage -> enrich -> writers -> judge -> emit, assembled here and nowhere else.

| stage   | module                                   | adds                                  |
|---------|------------------------------------------|---------------------------------------|
| decode  | monitor/events/decode.py                 | the event's fields (catalogue)        |
| lineage | monitor/lineage/stage.py                 | process image, parent, ancestors      |
| enrich  | monitor/events/enrich.py                 | what the host knows (users, fd.sip.name) |
| writers | monitor/events/writers.py                | who wrote an executed file in /tmp    |
| judge   | monitor/enforce/stage.py, rules/judge.py | alerts: kernel verdicts, rule matches |
| emit    | monitor/sinks/emit.py                    | events and alerts to the outputs      |

The sensor (monitor/kernel/sensor.py) decodes ring-buffer bytes into records and calls
the pipeline once per record.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.enforce.enforcer import Enforcer
from monitor.enforce.stage import EnforceVerdicts
from monitor.events.decode import Decode
from monitor.events.enrich import Enrich
from monitor.events.writers import ExeWriters
from monitor.kernel.records import Record
from monitor.lineage.stage import LineageStage
from monitor.rules.judge import RulesJudge
from monitor.rules.ruleset import RuleSet
from monitor.service.throttlewatch import ThrottleAlerts
from monitor.sinks.base import Sink
from monitor.sinks.emit import Emit
from monitor.stage import Item, Stage


class Pipeline:
    def __init__(self, rules: RuleSet, event_sinks: Sequence[Sink], alert_sinks: Sequence[Sink],
                 enforcer: Enforcer | None = None) -> None:
        self.decode = Decode(need_of=self._need_of)
        self.lineage = LineageStage()
        self.judge = RulesJudge(rules)
        self.emit = Emit(event_sinks, alert_sinks)
        judges: list[Stage] = [EnforceVerdicts(enforcer)] if enforcer is not None else []
        self.throttle = ThrottleAlerts()
        self.enrich = Enrich()
        self.enrich.dns.watch(rules.dns_names())
        self.writers = ExeWriters()
        self.stages: tuple[Stage, ...] = (self.decode, self.lineage, self.enrich, self.writers, *judges,
                                          self.throttle, self.judge, self.emit)

    def _need_of(self, evt_type: str) -> frozenset[str] | None:
        # Events going out hold every field anyway: nothing to leave for later.
        if self.emit.event_sinks:
            return None
        return self.judge.rules.fields_for(evt_type)  # a reload replaces judge.rules whole

    def __call__(self, record: Record) -> None:
        item = Item(record)
        for stage in self.stages:
            stage(item)
