"""Pipeline stage 2, lineage: the record updates the process cache; the event gets its ancestry."""

from __future__ import annotations

from typing import Any

from monitor.events.exe import name_is_exe
from monitor.kernel.records import ExecRecord
from monitor.lineage.cache import Lineage
from monitor.lineage.process import Key, ProcInfo
from monitor.stage import Item

MEMO_ENTRIES = 4096  # processes whose ancestry is kept between two lineage changes

# The ancestry fields of one process, computed once per lineage generation.
_Ancestry = tuple[dict[str, Any], list[str], list[int], list[str]]


class LineageStage:
    name = "lineage"

    def __init__(self, lineage: Lineage | None = None) -> None:
        # Set once the kernel map exists (after attach); until then events carry no ancestry.
        self.lineage = lineage
        # Walking the ancestor chain was a third of a quiet event's cost, though it changes
        # only when a process record (or a cache change) arrives: the fields are kept per
        # process until Lineage.generation moves. Keyed by the Lineage too: it is replaced
        # whole at attach.
        self._memo: dict[Key, _Ancestry] = {}
        self._memo_of: Lineage | None = None
        self._memo_gen = -1

    def _ancestry(self, lin: Lineage, info: ProcInfo) -> _Ancestry:
        if lin is not self._memo_of or lin.generation != self._memo_gen:
            self._memo.clear()
            self._memo_of, self._memo_gen = lin, lin.generation
        found = self._memo.get(info.key)
        if found is not None:
            return found
        ancestors = lin.ancestors(info)
        parent_fields: dict[str, Any] = {}
        if ancestors:
            parent = ancestors[0]
            parent_fields = {
                "proc.pname": parent.comm, "proc.pexe": parent.exe, "proc.pexepath": parent.exe,
                "proc.pcmdline": parent.cmdline(), "proc.pexec_id": lin.exec_id(parent),
            }
        found = (parent_fields, [a.comm for a in ancestors], [a.tgid for a in ancestors],
                 [a.exe for a in ancestors])
        if len(self._memo) < MEMO_ENTRIES:
            self._memo[info.key] = found
        return found

    def __call__(self, item: Item) -> None:
        lin = self.lineage
        if lin is None:
            return
        info = lin.observe(item.record)
        item.proc = info
        if info is None:
            return
        ev = item.event
        ev["proc.exec_id"] = lin.exec_id(info)
        if not isinstance(item.record, ExecRecord):
            # The record itself carries no image: the lineage entry has the last exec's.
            args = info.argv[1:]
            # The lineage keeps only the kernel-resolved path of what the process runs.
            ev.setdefault("proc.exe", info.exe)
            ev.setdefault("proc.exepath", info.exe)
            ev.setdefault("proc.is_name_exe", name_is_exe(ev.get("proc.name", ""), info.exe))
            ev.setdefault("proc.argv", info.argv)
            ev.setdefault("proc.args", " ".join(args))
            ev.setdefault("proc.cmdline", " ".join([info.comm, *args]))
        parent_fields, aname, apid, aexe = self._ancestry(lin, info)
        ev.update(parent_fields)
        # Copies: each event owns its lists (outputs serialise them later, on other threads).
        ev["proc.aname"] = aname[:]
        ev["proc.apid"] = apid[:]
        ev["proc.aexe"] = aexe = aexe[:]
        ev["proc.aexepath"] = aexe
