"""Pipeline stage 4, judge throttle records: a flood is itself a signal.

When a process (or its cgroup) goes over its budget of syscall records, the kernel sends
a throttle record on the process lane, naming that process; the pipeline decodes it and
adds lineage like any event (image, command line, ancestors). This stage turns the first
one into an alert, and then at most one per min_interval_s (drop_alert.min_interval_s,
like the drop alert): throttle records that arrive meanwhile are named in the next alert.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

from monitor.kernel.records import ThrottleRecord
from monitor.rules.alert import Alert
from monitor.service.ratelimit import AlertRateLimit
from monitor.stage import Item

RULE = "ringwatch: syscall flood throttled"
PRIORITY = "WARNING"
# Fields of the flooding process the alert carries, as the event has them.
PROCESS_FIELDS = (
    "proc.pid", "proc.name", "proc.exe", "proc.exepath", "proc.cmdline", "proc.ppid", "proc.pname",
    "proc.pcmdline", "proc.aname", "proc.apid", "proc.exec_id", "user.uid", "user.name",
    "cgroup.id", "throttle.scope", "throttle.count", "throttle.rate", "throttle.burst",
)


@dataclass
class ThrottleWatch(AlertRateLimit):
    notices: int = 0
    # Throttle records held back by the rate limit since the last alert: pid -> name.
    _held: dict[int, str] = field(default_factory=dict)

    def notice(self, ev: dict[str, Any], now: float) -> dict[str, Any] | None:
        """An alert for this throttle event, unless one went out less than min_interval_s ago."""
        self.notices += 1
        if not self.allow(now):
            self._held[int(ev.get("proc.pid", 0))] = str(ev.get("proc.name", ""))
            return None
        held, self._held = self._held, {}
        return build_alert(ev, held)

    def stats(self) -> dict[str, int | float]:
        return {"alerts": self.alerts, "notices": self.notices, "held": len(self._held),
                "min_interval_s": self.min_interval_s}


class ThrottleAlerts:
    name = "judge.throttle"

    def __init__(self, watch: ThrottleWatch | None = None) -> None:
        self.watch = watch or ThrottleWatch()

    def __call__(self, item: Item) -> None:
        if not isinstance(item.record, ThrottleRecord):
            return
        alert = self.watch.notice(item.complete(), time.monotonic())
        if alert is not None:
            item.alerts.append(alert)


def build_alert(ev: dict[str, Any], held: dict[int, str]) -> dict[str, Any]:
    fields = {k: ev[k] for k in PROCESS_FIELDS if k in ev}
    # [0] is the process itself (Falco's indexing): the lineage is what follows.
    lineage = " < ".join(f"{n}({p})" for n, p in zip(ev.get("proc.aname", [])[1:],
                                                      ev.get("proc.apid", [])[1:], strict=False))
    others = ""
    if held:
        fields["throttled_meanwhile"] = {str(p): n for p, n in sorted(held.items())}
        names = ", ".join(f"{n}({p})" for p, n in sorted(held.items()))
        others = f"; also throttled since the last alert: {names}"
    alert = Alert.build(
        rule=RULE,
        priority=PRIORITY,
        tags=["ringwatch", "internal", "throttle"],
        action="alert",
        output=(
            f"ringwatch: syscall records of pid {ev.get('proc.pid')} ({ev.get('proc.exepath', '')}, "
            f"cmdline {ev.get('proc.cmdline', '')!r}) over the {ev.get('throttle.scope')} budget of "
            f"{ev.get('throttle.rate')}/s: {ev.get('throttle.count')} throttled so far, not seen by "
            f"the rules; lineage {lineage or '-'}{others}"
        ),
        output_fields=fields,
        event=dict(ev),
        host=socket.gethostname(),
    )
    return alert.to_dict()
