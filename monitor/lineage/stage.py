"""Pipeline stage 2, lineage: the record updates the process cache; the event gets its ancestry."""

from __future__ import annotations

from typing import Any

from monitor.events.exe import name_is_exe
from monitor.kernel.records import ExecRecord
from monitor.lineage.cache import Lineage
from monitor.lineage.process import Key, ProcInfo
from monitor.stage import Item

MEMO_ENTRIES = 4096  # processes whose ancestry is kept between two lineage changes

# The ancestry of one process, computed once per lineage generation: the parent's fields
# and, nearest first, the ancestors' names, pids, argv[0]s and executables.
_Ancestry = tuple[dict[str, Any], list[str], list[int], list[str], list[str]]

# Groups a syscall event gets only when a rule reads one of their fields, or when the
# whole event is wanted (Item.complete()): building the lists and joining the command
# line cost a quiet event more than its rules did.
ANAME = frozenset({"proc.aname"})
ANCESTRY = frozenset({"proc.apid", "proc.aexe", "proc.aexepath"})
CMDLINE = frozenset({"proc.args", "proc.cmdline"})


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
                "proc.pname": parent.comm, "proc.pexe": argv0(parent), "proc.pexepath": parent.exe,
                "proc.pcmdline": parent.cmdline(), "proc.pexec_id": lin.exec_id(parent),
            }
        found = (parent_fields, [a.comm for a in ancestors], [a.tgid for a in ancestors],
                 [argv0(a) for a in ancestors], [a.exe for a in ancestors])
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
            # The lineage keeps the kernel-resolved path of what the process runs (exe)
            # and its argv; proc.exe is argv[0], as Falco defines it.
            ev.setdefault("proc.exe", argv0(info))
            ev.setdefault("proc.exepath", info.exe)
            ev.setdefault("proc.is_name_exe", name_is_exe(ev.get("proc.name", ""), info.exe))
            ev.setdefault("proc.argv", info.argv)
            item.fill(CMDLINE, _cmdline)
        ev.update(self._ancestry(lin, info)[0])
        item.fill(ANAME, self._fill_aname)
        item.fill(ANCESTRY, self._fill_ancestry)

    # Falco's indexing: [0] is the process itself (as this event sees it), then the
    # parent, the grandparent, ... New lists: each event owns its own (outputs serialise
    # them later, on other threads). Deferred, they run in the same pass of the record:
    # the memo answers again, for the same lineage.
    def _fill_aname(self, item: Item) -> None:
        info, ev = item.proc, item.event
        assert info is not None and self.lineage is not None
        ev["proc.aname"] = [ev.get("proc.name", info.comm), *self._ancestry(self.lineage, info)[1]]

    def _fill_ancestry(self, item: Item) -> None:
        info, ev = item.proc, item.event
        assert info is not None and self.lineage is not None
        _, _, apid, aexe, aexepath = self._ancestry(self.lineage, info)
        ev["proc.apid"] = [info.tgid, *apid]
        ev["proc.aexe"] = [ev.get("proc.exe", argv0(info)), *aexe]
        ev["proc.aexepath"] = [ev.get("proc.exepath", info.exe), *aexepath]


def _cmdline(item: Item) -> None:
    info, ev = item.proc, item.event
    assert info is not None
    args = info.argv[1:]
    ev.setdefault("proc.args", " ".join(args))
    ev.setdefault("proc.cmdline", " ".join([info.comm, *args]))


def argv0(info: ProcInfo) -> str:
    return info.argv[0] if info.argv else ""
