"""Pipeline stage 5, emit: the event to the event outputs, its alerts to the alert outputs.

Besides the configured outputs, live subscribers (`ringwatch tail` clients, through
monitor/service/tail.py) may watch alerts and events; a subscriber's emit must not block
(it queues boundedly and counts what it drops).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from monitor.sinks.base import Sink
from monitor.stage import Item


class Subscriber(Protocol):
    """Sees every alert, and every event while `wants_events` is true."""

    wants_events: bool

    def on_alert(self, alert: dict[str, Any]) -> None: ...

    def on_event(self, event: dict[str, Any]) -> None: ...


class Emit:
    name = "emit"

    def __init__(self, event_sinks: Sequence[Sink], alert_sinks: Sequence[Sink]) -> None:
        self.event_sinks = list(event_sinks)
        self.alert_sinks = list(alert_sinks)
        self.alert_counts: Counter[str] = Counter()
        # (rule, priority): what the metrics export as ringwatch_alerts_total.
        self.alert_priorities: Counter[tuple[str, str]] = Counter()
        self.subscribers: list[Subscriber] = []

    def subscribe(self, sub: Subscriber) -> None:
        self.subscribers.append(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def alert(self, alert: dict[str, Any]) -> None:
        """One alert out: rule matches, and ringwatch's own (the drop alert) through here too."""
        rule = str(alert.get("rule", ""))
        self.alert_counts[rule] += 1
        self.alert_priorities[(rule, str(alert.get("priority", "")))] += 1
        for sink in self.alert_sinks:
            sink.emit(alert)
        for sub in self.subscribers:
            sub.on_alert(alert)

    def alert_stats(self) -> dict[str, Any]:
        """The `alerts` section of `ringwatch stats`."""
        by_prio: Counter[str] = Counter()
        nested: dict[str, dict[str, int]] = {}
        for (rule, prio), n in sorted(self.alert_priorities.items()):
            by_prio[prio] += n
            nested.setdefault(rule, {})[prio] = n
        return {"total": sum(self.alert_counts.values()), "by_rule": dict(sorted(self.alert_counts.items())),
                "by_priority": dict(sorted(by_prio.items())), "by_rule_priority": nested}

    def sinks(self) -> list[Sink]:
        """Every output once (one object may serve events and alerts, e.g. stdout)."""
        seen: dict[int, Sink] = {}
        for sink in [*self.event_sinks, *self.alert_sinks]:
            seen.setdefault(id(sink), sink)
        return list(seen.values())

    def __call__(self, item: Item) -> None:
        subs = self.subscribers
        if item.deferred and (self.event_sinks or (subs and any(s.wants_events for s in subs))):
            item.complete()  # an event out holds every field, read by a rule or not
        for sink in self.event_sinks:
            sink.emit(item.event)
        for sub in self.subscribers:
            if sub.wants_events:
                sub.on_event(item.event)
        for alert in item.alerts:
            self.alert(alert)
