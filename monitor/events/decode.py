"""Pipeline stage 1, decode: a kernel record becomes an event, a flat dict of Falco-style fields.

A flat dict is what rule evaluation is cheapest on, and it is also the JSON-lines
format that `--record` writes and `ringwatch replay` reads. What each record type and
syscall sets is said by its entry in monitor.events.catalog.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from monitor.events.catalog import CATALOGUE, Catalogue, Event, EventType
from monitor.events.creds import CAPS_FIELDS, caps_fields
from monitor.events.fields import result_fields
from monitor.events.paths import PathResolver
from monitor.events.uring import op_fields
from monitor.kernel.records import SC_F_PATH_TRUNCATED, ExecRecord, Header, Record, RecordType, SyscallRecord
from monitor.stage import Item


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        return "noboot"


def rfc3339_ns(ts_ns: int) -> str:
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return _second(secs) + f"{ns:09d}Z"


@functools.lru_cache(maxsize=8)
def _second(secs: int) -> str:
    # strftime was a tenth of a quiet event's decode; events come in second-long runs.
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S.")


# Filled when a rule reads them, or when the whole event is wanted (Item.complete()).
TIME_FIELDS = frozenset({"evt.id", "evt.time"})


def _every_field(_evt_type: str) -> frozenset[str] | None:
    return None


class Decode:
    """Header fields, then the family's own through the catalogue's decoder."""

    name = "decode"

    def __init__(self, catalogue: Catalogue = CATALOGUE, paths: PathResolver | None = None,
                 need_of: Callable[[str], frozenset[str] | None] = _every_field) -> None:
        # The fields the loaded rules read on a syscall event of a type (monitor.pipeline);
        # process records always get every field (they are few, and lineage is built on them).
        self.need_of = need_of
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; the offset turns it into wall time.
        self.mono_to_wall_ns = time.time_ns() - time.monotonic_ns()
        # Process starts are CLOCK_BOOTTIME (task->start_boottime); events CLOCK_MONOTONIC.
        self.mono_to_boot_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.monotonic_ns()
        self.catalogue = catalogue
        self.paths = paths or PathResolver()
        self.boot_id = boot_id()
        by_record: dict[RecordType, EventType] = {}
        for entry in catalogue.entries:
            if entry.record is not RecordType.SYSCALL:
                by_record[entry.record] = entry
        self._by_record = by_record

    def common(self, h: Header, evt_type: str) -> Event:
        ev = self.header(h, evt_type)
        self.time_fields(ev, h)
        return ev

    def time_fields(self, ev: Event, h: Header) -> None:
        # Unique on the host and the same in every sink: one CPU cannot record two
        # events in the same nanosecond; the boot id separates boots.
        ev["evt.id"] = f"{self.boot_id}-{h.cpu}-{h.ktime_ns}"
        ev["evt.time"] = rfc3339_ns(h.ktime_ns + self.mono_to_wall_ns)

    def header(self, h: Header, evt_type: str) -> Event:
        """The header's fields but evt.id and evt.time (time_fields)."""
        wall = h.ktime_ns + self.mono_to_wall_ns
        return {
            "evt.type": evt_type,
            "evt.ts": wall,
            "evt.mono_ns": h.ktime_ns,
            "evt.cpu": h.cpu,
            "proc.pid": h.tgid,
            "proc.tid": h.pid,
            "proc.ppid": h.ppid,
            "proc.name": h.comm,
            "proc.start_ns": h.start_ns,
            "proc.duration": h.ktime_ns + self.mono_to_boot_ns - h.start_ns,
            "user.uid": h.uid,
            "group.gid": h.gid,
            "cgroup.id": h.cgroup_id,
        }

    def event(self, rec: object) -> Event:
        """Every field of the record's event."""
        item = Item(rec)  # type: ignore[arg-type]
        self(item)
        return item.complete()

    def __call__(self, item: Item) -> None:
        rec = item.record
        if isinstance(rec, SyscallRecord):
            found = self.catalogue.by_number.get(rec.nr)
            name = found[0] if found else str(rec.nr)
            item.need = self.need_of(name)
            ev = item.event = self.header(rec.h, name)
            item.fill(TIME_FIELDS, self._fill_time)
            ev.update(result_fields(rec.ret))
            item.fill(CAPS_FIELDS, self._fill_caps)
            if found is not None:
                found[1].decode(rec, name, ev, self.paths)
            ev.update(op_fields(rec, name))
            if rec.flags & SC_F_PATH_TRUNCATED:
                ev["fd.name_truncated"] = True
            # Kernel coalescing: how many identical occurrences this event stands for.
            ev["evt.count"] = rec.count
            ev["evt.first_ts"] = rec.first_ns + self.mono_to_wall_ns
            ev["evt.last_ts"] = ev["evt.ts"]
            ev["evt.count_only"] = rec.count_only
            return
        item.event = self._process_event(rec)

    def _fill_time(self, item: Item) -> None:
        self.time_fields(item.event, item.record.h)

    def _fill_caps(self, item: Item) -> None:
        item.event.update(caps_fields(item.record.caps))  # type: ignore[union-attr]

    def _process_event(self, rec: Record) -> Event:
        h: Header = rec.h
        entry = self._by_record[h.type]
        if isinstance(rec, ExecRecord):
            found = self.catalogue.by_number.get(rec.syscall_nr)
            name = found[0] if found else str(rec.syscall_nr)
            ev = self.common(h, name)
            ev.update(result_fields(rec.ret))
            ev.update(caps_fields(rec.caps))
        else:
            ev = self.common(h, next(iter(entry.types)))
        entry.decode(rec, ev["evt.type"], ev, self.paths)
        return ev
