"""DenySpecs -> the exact contents of the kernel maps (pure; no bcc).

Keys are LPM-trie keys: (bytes, prefix length in bits). An exact path is its bytes with
the terminating NUL, a prefix its bytes without; a network its address bytes and mask
length. The kernel finds only the longest key that matches, so each key carries every
rule that covers it: a rule's entry E covers key K when E is a prefix of K (for paths,
K's bytes start with E's; for networks, K is inside E). Then the longest match holds
all rules that apply to any path or address under it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from monitor.enforce.spec import DenySpec, Hook, Mode, Network, UidOp
from monitor.errors import UserError

SLOTS = 8  # RW_DENY_SLOTS in bpf/lsm.bpf.c
RULES_MAX = 256  # RW_DENY_RULES_MAX
KEYS_MAX = 4096  # RW_DENY_KEYS_MAX, per map
PATH_LEN = 256  # RW_PATH_LEN

UID_ANY, UID_EQ, UID_NE = 0, 1, 2  # RW_UID_*

Key = tuple[bytes, int]


class PlanError(UserError):
    """Deny rules that fit no kernel map (too many, too many on one key)."""


@dataclass(frozen=True, slots=True)
class RuleEntry:
    """struct rw_rule."""

    audit: bool
    uid_op: int
    uid: int
    port: int
    cgroup_id: int
    has_except: bool


@dataclass
class MapPlan:
    rules: dict[int, RuleEntry] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    exec_keys: dict[Key, tuple[int, ...]] = field(default_factory=dict)
    open_keys: dict[Key, tuple[int, ...]] = field(default_factory=dict)
    v4_keys: dict[Key, tuple[int, ...]] = field(default_factory=dict)
    v6_keys: dict[Key, tuple[int, ...]] = field(default_factory=dict)
    excepts: set[tuple[int, bytes]] = field(default_factory=set)

    def summary(self) -> dict[str, int]:
        return {"rules": len(self.rules), "exec_keys": len(self.exec_keys),
                "open_keys": len(self.open_keys), "v4_keys": len(self.v4_keys),
                "v6_keys": len(self.v6_keys), "exceptions": len(self.excepts)}


def path_key(path: str, prefix: bool) -> Key:
    raw = path.encode("utf-8", "surrogateescape") + (b"" if prefix else b"\0")
    return raw, len(raw) * 8


def net_key(net: Network) -> Key:
    return net.network_address.packed, net.prefixlen


def _covering(entries: list[tuple[Key, int]], covers: str, where: str,
              names: dict[int, str]) -> dict[Key, tuple[int, ...]]:
    out: dict[Key, tuple[int, ...]] = {}
    for key, _ in entries:
        if key in out:
            continue
        if covers == "path":
            ids = {rid for (eb, _), rid in entries if key[0].startswith(eb)}
        else:
            ids = {rid for (eb, el), rid in entries if key[1] >= el and _in_net(key, (eb, el))}
        if len(ids) > SLOTS:
            listed = ", ".join(repr(names[i]) for i in sorted(ids))
            raise PlanError(f"{where} {_key_text(key, covers)}: {len(ids)} deny rules apply "
                            f"({listed}); the kernel holds at most {SLOTS} per {covers}")
        out[key] = tuple(sorted(ids))
    if len(out) > KEYS_MAX:
        raise PlanError(f"{where}: {len(out)} entries; the kernel map holds {KEYS_MAX}")
    return out


def _in_net(inner: Key, outer: Key) -> bool:
    a = int.from_bytes(inner[0], "big")
    b = int.from_bytes(outer[0], "big")
    bits = len(inner[0]) * 8
    shift = bits - outer[1]
    return (a >> shift) == (b >> shift) if shift < bits else True


def _key_text(key: Key, covers: str) -> str:
    if covers == "path":
        raw = key[0]
        return repr(raw.rstrip(b"\0").decode("utf-8", "surrogateescape")) + (
            "" if raw.endswith(b"\0") else " (prefix)")
    return str(ipaddress.ip_network((key[0], key[1])))


def build(specs: list[tuple[int, DenySpec]]) -> MapPlan:
    """Map contents for (rule id, spec) pairs; ids are positive and distinct."""
    if len(specs) > RULES_MAX:
        raise PlanError(f"{len(specs)} deny/audit rules; the kernel holds at most {RULES_MAX}")
    plan = MapPlan()
    entries: dict[str, list[tuple[Key, int]]] = {"exec": [], "open": [], "v4": [], "v6": []}
    for rid, spec in specs:
        if rid <= 0 or rid in plan.names:
            raise ValueError(f"rule id {rid} for {spec.rule!r} is not positive and unique")
        plan.names[rid] = spec.rule
        uid_op, uid = UID_ANY, 0
        if spec.uid is not None:
            uid_op = UID_EQ if spec.uid[0] is UidOp.EQ else UID_NE
            uid = spec.uid[1]
        plan.rules[rid] = RuleEntry(
            audit=spec.mode is Mode.AUDIT, uid_op=uid_op, uid=uid, port=spec.port or 0,
            cgroup_id=spec.cgroup_id or 0, has_except=bool(spec.except_exes),
        )
        if spec.hook is Hook.CONNECT:
            for net in spec.networks:
                entries["v4" if net.version == 4 else "v6"].append((net_key(net), rid))
            continue
        target = entries[spec.hook.value]
        target.extend((path_key(p, prefix=False), rid) for p in spec.paths)
        target.extend((path_key(p, prefix=True), rid) for p in spec.prefixes)
        for exe in spec.except_exes:
            raw = exe.encode("utf-8", "surrogateescape")
            if len(raw) >= PATH_LEN:
                raise PlanError(f"rule {spec.rule!r}: exception {exe!r} is longer than {PATH_LEN - 1} bytes")
            plan.excepts.add((rid, raw))
    plan.exec_keys = _covering(entries["exec"], "path", "exec deny map", plan.names)
    plan.open_keys = _covering(entries["open"], "path", "open deny map", plan.names)
    plan.v4_keys = _covering(entries["v4"], "network", "IPv4 deny map", plan.names)
    plan.v6_keys = _covering(entries["v6"], "network", "IPv6 deny map", plan.names)
    return plan
