"""Pipeline stage 2, lineage: the record updates the process cache; the event gets its ancestry."""

from __future__ import annotations

from monitor.events.exe import name_is_exe
from monitor.kernel.records import ExecRecord
from monitor.lineage.cache import Lineage
from monitor.lineage.process import ProcInfo
from monitor.stage import Item


class LineageStage:
    name = "lineage"

    def __init__(self, lineage: Lineage | None = None) -> None:
        # Set once the kernel map exists (after attach); until then events carry no ancestry.
        self.lineage = lineage

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
            # The lineage keeps the kernel-resolved path of what the process runs (exe)
            # and its argv; proc.exe is argv[0], as Falco defines it.
            ev.setdefault("proc.exe", argv0(info))
            ev.setdefault("proc.exepath", info.exe)
            ev.setdefault("proc.is_name_exe", name_is_exe(ev.get("proc.name", ""), info.exe))
            ev.setdefault("proc.argv", info.argv)
            ev.setdefault("proc.args", " ".join(args))
            ev.setdefault("proc.cmdline", " ".join([info.comm, *args]))
        ancestors = lin.ancestors(info)
        if ancestors:
            parent = ancestors[0]
            ev["proc.pname"] = parent.comm
            ev["proc.pexe"] = argv0(parent)
            ev["proc.pexepath"] = parent.exe
            ev["proc.pcmdline"] = parent.cmdline()
            ev["proc.pexec_id"] = lin.exec_id(parent)
        # Falco's indexing: [0] is the process itself (as this event sees it), then the
        # parent, the grandparent, ...
        ev["proc.aname"] = [ev.get("proc.name", info.comm), *(a.comm for a in ancestors)]
        ev["proc.apid"] = [info.tgid, *(a.tgid for a in ancestors)]
        ev["proc.aexe"] = [ev.get("proc.exe", argv0(info)), *(argv0(a) for a in ancestors)]
        ev["proc.aexepath"] = [ev.get("proc.exepath", info.exe), *(a.exe for a in ancestors)]


def argv0(info: ProcInfo) -> str:
    return info.argv[0] if info.argv else ""
