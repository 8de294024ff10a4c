"""The event fields of an enforcement record (evt.type "enforce")."""

from __future__ import annotations

import ipaddress
from typing import Any

from monitor.events.fields import result_fields
from monitor.kernel.records import DenyHook, DenyRecord

EVENT_TYPE = "enforce"
_OPS = {DenyHook.EXEC: "exec", DenyHook.OPEN: "open", DenyHook.CONNECT: "connect"}


def deny_fields(rec: DenyRecord) -> dict[str, Any]:
    """Fields beyond the common ones; the rule's name is added by the Enforcer."""
    ev: dict[str, Any] = {
        "enforce.action": "audit" if rec.audit else "deny",
        "enforce.op": _OPS[rec.hook],
        "enforce.rule_id": rec.rule_id,
        **result_fields(rec.ret),
        # The kernel's view of the ancestry at the moment of the decision, the process
        # itself first as Falco indexes it; the lineage cache, when it knows the process,
        # replaces these with fuller entries.
        "proc.apid": [rec.h.tgid, *(pid for pid, _ in rec.ancestors)],
        "proc.aname": [rec.h.comm, *(comm for _, comm in rec.ancestors)],
    }
    if rec.hook is DenyHook.CONNECT:
        ip = ipaddress.ip_address(rec.addr) if rec.addr else None
        ev["fd.sip"] = ev["fd.rip"] = str(ip) if ip else ""
        ev["fd.sport"] = ev["fd.rport"] = rec.port
        ev["fd.name"] = f"[{ip}]:{rec.port}" if ip and ip.version == 6 else f"{ip}:{rec.port}"
    else:
        ev["fd.name"] = rec.path
    return ev
