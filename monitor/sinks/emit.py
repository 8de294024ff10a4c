"""Pipeline stage 5, emit: the event to the event outputs, its alerts to the alert outputs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from monitor.sinks.base import Sink
from monitor.stage import Item


class Emit:
    name = "emit"

    def __init__(self, event_sinks: Sequence[Sink], alert_sinks: Sequence[Sink]) -> None:
        self.event_sinks = list(event_sinks)
        self.alert_sinks = list(alert_sinks)
        self.alert_counts: Counter[str] = Counter()

    def alert(self, alert: dict[str, Any]) -> None:
        """One alert out: rule matches, and ringwatch's own (the drop alert) through here too."""
        self.alert_counts[str(alert.get("rule", ""))] += 1
        for sink in self.alert_sinks:
            sink.emit(alert)

    def sinks(self) -> list[Sink]:
        """Every output once (one object may serve events and alerts, e.g. stdout)."""
        seen: dict[int, Sink] = {}
        for sink in [*self.event_sinks, *self.alert_sinks]:
            seen.setdefault(id(sink), sink)
        return list(seen.values())

    def __call__(self, item: Item) -> None:
        for sink in self.event_sinks:
            sink.emit(item.event)
        for alert in item.alerts:
            self.alert(alert)
