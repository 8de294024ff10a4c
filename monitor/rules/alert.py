"""The alert record: what a matching rule reports about an event."""

from __future__ import annotations

import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

_PROCESS_FIELDS = {
    "pid": "proc.pid", "tid": "proc.tid", "ppid": "proc.ppid", "name": "proc.name",
    "exe": "proc.exepath", "cmdline": "proc.cmdline", "uid": "user.uid", "user": "user.name",
    "exec_id": "proc.exec_id",
}

# Read by every alert (process_of, ancestors_of), whatever the rule's output names.
ALERT_FIELDS = frozenset({*_PROCESS_FIELDS.values(), "evt.time", "proc.apid", "proc.aname",
                          "proc.aexepath", "proc.pname", "proc.pexepath"})


class AlertIds:
    """Unique alert ids, cheaper than uuid4 (which reads os.urandom on every call):
    128 random bits drawn once per process, then a counter. Unique across restarts and
    hosts as uuid4 is, with the counter telling one process's alerts apart."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(16)
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}-{next(self._count)}"


# One ancestor in an alert, as the alert record holds it: {"pid", "name", "exe"}.
Ancestor = dict[str, Any]


def process_of(event: dict[str, Any]) -> dict[str, Any]:
    return {key: event.get(name) for key, name in _PROCESS_FIELDS.items()}


def _tail(value: Any) -> list[Any] | tuple[Any, ...]:
    # Replayed events are input: a non-list here means no lineage, not a crash.
    return value[1:] if isinstance(value, list | tuple) else []


def ancestors_of(event: dict[str, Any]) -> list[Ancestor]:
    """Nearest first, from proc.apid/aname/aexepath (whose [0] is the process itself, as
    Falco indexes them); the parent alone when only p* fields exist. Built once, in the
    record's own form: an alert is made to be written out."""
    get = event.get
    pids, names, exes = _tail(get("proc.apid")), _tail(get("proc.aname")), _tail(get("proc.aexepath"))
    if pids or names or exes:
        return [{"pid": p, "name": n, "exe": e} for p, n, e in zip_longest(pids, names, exes)]
    if get("proc.ppid") is None and get("proc.pname") is None:
        return []
    return [{"pid": get("proc.ppid"), "name": get("proc.pname"), "exe": get("proc.pexepath")}]


@dataclass(slots=True)
class Alert:
    rule: str
    priority: str
    tags: list[str]
    action: str
    output: str
    output_fields: dict[str, Any]
    event: dict[str, Any]
    host: str
    time: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    process: dict[str, Any] = field(default_factory=dict)
    ancestors: list[Ancestor] = field(default_factory=list)

    @classmethod
    def build(cls, *, rule: str, priority: str, tags: list[str], action: str, output: str,
              output_fields: dict[str, Any], event: dict[str, Any], host: str,
              ids: AlertIds | None = None) -> Alert:
        return cls(rule=rule, priority=priority, tags=tags, action=action, output=output,
                   output_fields=output_fields, event=event, host=host,
                   time=event.get("evt.time"), process=process_of(event),
                   ancestors=ancestors_of(event),
                   id=ids.next() if ids is not None else str(uuid.uuid4()))

    def to_dict(self) -> dict[str, Any]:
        # Built by hand, not asdict(): that deep-copies the event, once per alert.
        # Key order is for readers of JSON lines: who/what first, the bulky event last.
        return {
            "id": self.id, "time": self.time, "host": self.host, "rule": self.rule,
            "priority": self.priority, "action": self.action, "tags": list(self.tags),
            "output": self.output, "output_fields": self.output_fields,
            "process": self.process,
            "ancestors": self.ancestors,
            "event": self.event,
        }


# Falco spells priorities this way in its JSON output.
_FALCO_PRIORITY = {
    "EMERGENCY": "Emergency", "ALERT": "Alert", "CRITICAL": "Critical", "ERROR": "Error",
    "WARNING": "Warning", "NOTICE": "Notice", "INFORMATIONAL": "Informational", "DEBUG": "Debug",
}


def falco_shape(record: dict[str, Any]) -> dict[str, Any]:
    """An alert record (Alert.to_dict()) as Falco's JSON output writes one.

    Falco's `output` starts with the event time and the priority; its output_fields hold
    the fields the output names plus `evt.time` in ns since the epoch.
    """
    priority = _FALCO_PRIORITY.get(str(record.get("priority")), str(record.get("priority")))
    time = record.get("time")
    event = record.get("event") or {}
    clock = time[11:29] if isinstance(time, str) and len(time) >= 29 else "00:00:00.000000000"
    fields = dict(record.get("output_fields") or {})
    if isinstance(event, dict) and event.get("evt.ts") is not None:
        fields.setdefault("evt.time", event["evt.ts"])
    return {
        "hostname": record.get("host"),
        "output": f"{clock}: {priority} {record.get('output', '')}",
        "output_fields": fields,
        "priority": priority,
        "rule": record.get("rule"),
        "source": "syscall",
        "tags": list(record.get("tags") or []),
        "time": time,
    }
