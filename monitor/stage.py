"""What every pipeline stage is handed: one record on its way through, and the one signature.

Stages run in order (monitor.pipeline assembles them) and each adds to the Item what it
is for; none calls another, so a record never climbs back to a stage it already left.
"""

from __future__ import annotations

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


class Stage(Protocol):
    name: str

    def __call__(self, item: Item) -> None: ...
