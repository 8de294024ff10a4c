"""What every pipeline stage is handed: one record on its way through, and the one signature.

Stages run in order (monitor.pipeline assembles them) and each adds to the Item what it
is for; none calls another, so a record never climbs back to a stage it already left.
A stage may leave fields no loaded rule reads as a filler on the Item (`deferred`),
which runs only if something needs the whole event (`complete()`): Falco's filterchecks
likewise extract a field only when a rule or an output asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.kernel.records import Record
from monitor.lineage.process import ProcInfo


@dataclass(slots=True)
class Item:
    record: Record
    # Falco-style fields; filled by decode, added to by lineage and enrich.
    event: dict[str, Any] = field(default_factory=dict)
    # The process the record is about, once the lineage stage has looked it up.
    proc: ProcInfo | None = None
    # Alerts decided by the judge stages, sent by emit.
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # The fields the loaded rules read on events of this type (None: every field). A
    # stage may leave a group of fields none of them reads for later (`deferred`): most
    # events match nothing, and nothing else looks at them.
    need: frozenset[str] | None = None
    # What those stages left, oldest first: each fills its group into `event`.
    deferred: list[Callable[[Item], None]] = field(default_factory=list)

    def wants(self, group: frozenset[str]) -> bool:
        need = self.need
        return need is None or not group.isdisjoint(need)

    def fill(self, group: frozenset[str], filler: Callable[[Item], None]) -> None:
        """Fill a group of fields now if a rule reads one of them, else leave it for later."""
        if self.wants(group):
            filler(self)
        else:
            self.deferred.append(filler)

    def complete(self) -> dict[str, Any]:
        """Every field, the deferred ones filled in now: before anything outside the
        rules' conditions reads the event (an alert, an event output, a subscriber)."""
        deferred = self.deferred
        while deferred:
            deferred.pop(0)(self)
        return self.event


class Stage(Protocol):
    name: str

    def __call__(self, item: Item) -> None: ...
