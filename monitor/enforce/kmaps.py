"""Writes a MapPlan into the LSM programs' maps, replacing the previous one in place.

Order matters because the programs keep running while the maps change: new rule entries
first, then the keys that point at them, then stale keys, then stale rules. A key never
names a rule id that is missing for longer than one update, and a rule that stays in
force is never absent from its key (ids are reused only for unchanged rules).
"""

from __future__ import annotations

import ctypes as ct
from typing import Any

from monitor.enforce.plan import Key, MapPlan, RuleEntry

# enum rw_enforce_cfg in bpf/lsm.bpf.c
CFG_EXEC, CFG_OPEN, CFG_CONNECT = 0, 1, 2
# enum rw_enforce_stat
STAT_NAMES = ("checked", "denied", "audited", "path_failed", "exe_failed")

_KEY_MAPS = (("exec_keys", "deny_exec"), ("open_keys", "deny_open"),
             ("v4_keys", "deny_v4"), ("v6_keys", "deny_v6"))


def _fill_bytes(obj: Any, name: str, raw: bytes) -> None:
    """Zero-padded bytes into an array member (ctypes reads char arrays back as bytes,
    so they are written through the struct's address)."""
    member = getattr(type(obj), name)
    if len(raw) > member.size:
        raise ValueError(f"{len(raw)} bytes do not fit {name}[{member.size}]")
    at = ct.addressof(obj) + member.offset
    ct.memset(at, 0, member.size)
    ct.memmove(at, raw, len(raw))


def _raw_bytes(obj: Any, name: str) -> bytes:
    member = getattr(type(obj), name)
    return ct.string_at(ct.addressof(obj) + member.offset, member.size)


class KernelMaps:
    """The enforcement maps of one loaded bcc BPF object."""

    def __init__(self, bpf: Any) -> None:
        self._bpf = bpf
        self._current = MapPlan()

    def _key(self, table: Any, key: Key) -> Any:
        k = table.Key()
        k.prefixlen = key[1]
        _fill_bytes(k, "path" if hasattr(k, "path") else "addr", key[0])
        return k

    def _slots(self, table: Any, ids: tuple[int, ...]) -> Any:
        v = table.Leaf()
        v.n = len(ids)
        for i, rid in enumerate(ids):
            v.ids[i] = rid
        return v

    def _rule(self, table: Any, e: RuleEntry) -> Any:
        v = table.Leaf()
        v.audit, v.uid_op, v.uid, v.port = int(e.audit), e.uid_op, e.uid, e.port
        v.cgroup_id, v.has_except = e.cgroup_id, int(e.has_except)
        return v

    def _except_key(self, table: Any, rid: int, exe: bytes) -> Any:
        k = table.Key()
        k.rule_id = rid
        _fill_bytes(k, "path", exe)
        return k

    def apply(self, plan: MapPlan) -> None:
        old = self._current
        rules = self._bpf["deny_rules"]
        for rid, entry in plan.rules.items():
            if old.rules.get(rid) != entry:
                rules[ct.c_uint32(rid)] = self._rule(rules, entry)
        exc = self._bpf["deny_except"]
        for rid, exe in plan.excepts - old.excepts:
            exc[self._except_key(exc, rid, exe)] = ct.c_uint8(1)
        cfg = self._bpf["enforce_cfg"]
        for i, (attr, name) in enumerate(_KEY_MAPS):
            table = self._bpf[name]
            new_keys: dict[Key, tuple[int, ...]] = getattr(plan, attr)
            old_keys: dict[Key, tuple[int, ...]] = getattr(old, attr)
            if new_keys:
                cfg[ct.c_int(min(i, CFG_CONNECT))] = ct.c_uint32(1)
            for key, ids in new_keys.items():
                if old_keys.get(key) != ids:
                    table[self._key(table, key)] = self._slots(table, ids)
            for key in old_keys.keys() - new_keys.keys():
                del table[self._key(table, key)]
        if not plan.exec_keys:
            cfg[ct.c_int(CFG_EXEC)] = ct.c_uint32(0)
        if not plan.open_keys:
            cfg[ct.c_int(CFG_OPEN)] = ct.c_uint32(0)
        if not plan.v4_keys and not plan.v6_keys:
            cfg[ct.c_int(CFG_CONNECT)] = ct.c_uint32(0)
        for rid, exe in old.excepts - plan.excepts:
            del exc[self._except_key(exc, rid, exe)]
        for rid in old.rules.keys() - plan.rules.keys():
            del rules[ct.c_uint32(rid)]
        self._current = plan

    def read_back(self) -> MapPlan:
        """What the kernel maps hold now, read from the kernel (for tests and `stats`)."""
        out = MapPlan()
        for attr, name in _KEY_MAPS:
            keys: dict[Key, tuple[int, ...]] = {}
            for k, v in self._bpf[name].items():
                if hasattr(k, "path"):  # bytes past the prefix are padding
                    raw = _raw_bytes(k, "path")[: -(-k.prefixlen // 8)]
                else:
                    raw = _raw_bytes(k, "addr")
                keys[(raw, k.prefixlen)] = tuple(v.ids[: v.n])
            setattr(out, attr, keys)
        for k, v in self._bpf["deny_rules"].items():
            out.rules[k.value] = RuleEntry(bool(v.audit), v.uid_op, v.uid, v.port, v.cgroup_id,
                                           bool(v.has_except))
        for k, _ in self._bpf["deny_except"].items():
            out.excepts.add((k.rule_id, _raw_bytes(k, "path").rstrip(b"\0")))
        return out

    def stats(self) -> dict[str, int]:
        table = self._bpf["enforce_stats"]
        return {name: sum(table[ct.c_int(i)]) for i, name in enumerate(STAT_NAMES)}
