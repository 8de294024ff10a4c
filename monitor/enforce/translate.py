"""Deny rules (rule-engine ASTs over Falco fields) -> DenySpec, or an error saying why not.

The kernel can only check what bpf/lsm.bpf.c has maps for, so a condition is accepted
only as a conjunction of these (after `not` is pushed inward):
- `evt.type` == / in: picks the hook (execve/execveat -> exec, open/openat/openat2 ->
  open, connect -> connect); exactly one hook per rule;
- the hook's target: `proc.exepath` (exec) or `fd.name` (open) == / in / startswith (an `=~`
  whose pattern is a plain prefix); `fd.sip` (addresses) or `fd.snet` (CIDRs) == / in and
  `fd.sport` == for connect (fd.rip / fd.rport, the connect events' names, alike); an
  `or` of such tests on one target is a union;
- scope: `user.uid` == / != a number; `cgroup.id` == a number;
- exceptions (open only): `proc.exepath` != / not in, i.e. processes running those binaries.
Anything else is refused, naming the rule and the part the kernel cannot check: a deny
rule never silently degrades to an alert.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import rule_engine.ast as ast

from monitor.enforce.spec import DenySpec, Hook, Mode, Network, UidOp
from monitor.errors import UserError
from monitor.rules.condition import literal_prefix

PATH_MAX = 255  # bytes of path the kernel map keys hold (RW_PATH_LEN less the NUL)

EVENT_HOOKS: dict[str, Hook] = {
    "execve": Hook.EXEC, "execveat": Hook.EXEC,
    "open": Hook.OPEN, "openat": Hook.OPEN, "openat2": Hook.OPEN,
    "connect": Hook.CONNECT,
}
# The kernel checks the file being executed (bprm->file's path): Falco's proc.exepath.
# proc.exe is argv[0], which the caller chooses, so deny rules may not name it.
EXE = "proc.exepath"
TARGET_FIELD = {Hook.EXEC: EXE, Hook.OPEN: "fd.name"}
# The syscall events name a connect's destination fd.rip/fd.rport (Falco: remote); deny
# rules may use those or the server-side names.
ALIASES = {"fd.rip": "fd.sip", "fd.rport": "fd.sport"}


class TranslateError(UserError):
    """A deny rule the kernel cannot enforce; the message names the rule and the reason."""


class _Refused(Exception):
    pass


@dataclass
class _Parts:
    hooks: set[Hook] = field(default_factory=set)
    targets: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)  # field -> [(kind, v)]
    port: int | None = None
    uid: tuple[UidOp, int] | None = None
    cgroup_id: int | None = None
    except_exes: list[str] = field(default_factory=list)


def _describe(node: Any, field_of: Callable[[str], str]) -> str:
    if isinstance(node, ast.SymbolExpression):
        return field_of(node.name)
    if isinstance(node, ast.StringExpression):
        return repr(node.value)
    if isinstance(node, ast.FloatExpression):
        return _number_text(node.value)
    if isinstance(node, ast.ArrayExpression):
        return "[" + ", ".join(_describe(v, field_of) for v in node.value) + "]"
    return type(node).__name__.removesuffix("Expression").lower()


def _number_text(v: Any) -> str:
    return str(int(v)) if isinstance(v, (int, float, Decimal)) and v == int(v) else str(v)


class _Translator:
    def __init__(self, field_of: Callable[[str], str]) -> None:
        self.field_of = field_of
        self.parts = _Parts()

    def refuse(self, why: str) -> _Refused:
        return _Refused(why)

    def symbol(self, node: Any) -> str | None:
        if not isinstance(node, ast.SymbolExpression):
            return None
        name = self.field_of(node.name)
        return ALIASES.get(name, name)

    def strings(self, node: Any, what: str) -> list[str]:
        if isinstance(node, ast.StringExpression):
            return [node.value]
        if isinstance(node, ast.ArrayExpression):
            out = []
            for v in node.value:
                if not isinstance(v, ast.StringExpression):
                    got = _describe(v, self.field_of)
                    raise self.refuse(f"{what}: list items must be strings, got {got}")
                out.append(v.value)
            return out
        raise self.refuse(f"{what}: compared with {_describe(node, self.field_of)}, not a string")

    def number(self, node: Any, what: str) -> int:
        if isinstance(node, ast.FloatExpression) and node.value == int(node.value):
            return int(node.value)
        raise self.refuse(f"{what}: compared with {_describe(node, self.field_of)}, not an integer")

    def conjuncts(self, node: Any, negated: bool = False) -> list[tuple[Any, bool]]:
        """Flatten and/not: a list of (test, negated) that must all hold."""
        if isinstance(node, ast.UnaryExpression) and node.type == "not":
            return self.conjuncts(node.right, not negated)
        # not (a or b) == not a and not b; a and b as is.
        if isinstance(node, ast.LogicExpression) and (
            (node.type == "and" and not negated) or (node.type == "or" and negated)
        ):
            return self.conjuncts(node.left, negated) + self.conjuncts(node.right, negated)
        return [(node, negated)]

    def disjuncts(self, node: Any) -> list[Any]:
        if isinstance(node, ast.LogicExpression) and node.type == "or":
            return self.disjuncts(node.left) + self.disjuncts(node.right)
        return [node]

    def membership(self, node: Any) -> tuple[str, str, Any] | None:
        """(field, op, value node) for `field == v`, `field in [..]`, `field =~ v`; else None."""
        if isinstance(node, ast.ComparisonExpression) and node.type in ("eq", "ne"):
            for sym, val in ((node.left, node.right), (node.right, node.left)):
                name = self.symbol(sym)
                if name is not None:
                    return name, node.type, val
        if isinstance(node, ast.ContainsExpression):
            name = self.symbol(node.member)
            if name is not None and isinstance(node.container, ast.ArrayExpression):
                return name, "in", node.container
            if self.symbol(node.container) is not None:
                raise self.refuse(f"substring test on {self.symbol(node.container)} "
                                  "(`x in field`) has no kernel equivalent")
        if isinstance(node, ast.FuzzyComparisonExpression):
            name = self.symbol(node.left)
            if name is not None:
                return name, node.type, node.right
        return None

    def add(self, node: Any, negated: bool) -> None:
        if isinstance(node, ast.LogicExpression) and node.type == "or":
            self.add_union(node)
            return
        m = self.membership(node)
        if m is None:
            raise self.refuse(f"{_describe(node, self.field_of)} test: only ==, !=, in, startswith "
                              "and and/or/not are checked in the kernel")
        name, op, val = m
        positive = (op in ("eq", "in", "eq_fzm")) != negated
        if name == "proc.exe":
            raise self.refuse("proc.exe is argv[0], which the caller chooses; name proc.exepath, "
                              "the file the kernel executes")
        if name == "evt.type":
            if not positive:
                raise self.refuse("evt.type: a negated event type does not pick a kernel hook")
            for t in self.strings(val, "evt.type"):
                if t not in EVENT_HOOKS:
                    raise self.refuse(f"evt.type {t!r} has no LSM hook (enforceable: "
                                      f"{', '.join(sorted(EVENT_HOOKS))})")
                self.parts.hooks.add(EVENT_HOOKS[t])
            return
        if name in (EXE, "fd.name", "fd.sip", "fd.snet"):
            if positive:
                self.parts.targets.setdefault(name, []).extend(self.target_values(name, op, val))
                return
            if name == EXE and op in ("eq", "ne", "in"):
                self.parts.except_exes.extend(self.strings(val, name))
                return
            raise self.refuse(f"{name}: a negated test here has no kernel equivalent")
        if op not in ("eq", "ne"):
            raise self.refuse(f"{name}: operator {op} has no kernel equivalent")
        if name == "fd.sport" and positive:
            self.parts.port = self.number(val, name)
            if not 0 < self.parts.port < 65536:
                raise self.refuse(f"fd.sport: {self.parts.port} is not a port")
            return
        if name == "user.uid":
            self.parts.uid = (UidOp.EQ if positive else UidOp.NE, self.number(val, name))
            return
        if name == "cgroup.id" and positive:
            self.parts.cgroup_id = self.number(val, name)
            return
        raise self.refuse(f"field {name}{' (negated)' if not positive else ''} has no kernel check")

    def target_values(self, name: str, op: str, val: Any) -> list[tuple[str, Any]]:
        if op == "eq_fzm":
            pattern = val.value if isinstance(val, ast.StringExpression) else None
            prefix = literal_prefix(pattern) if pattern is not None else None
            if prefix is None or name in ("fd.sip", "fd.snet"):
                raise self.refuse(f"{name}: pattern {_describe(val, self.field_of)} is not a plain "
                                  "prefix (startswith); the kernel matches exact paths and prefixes")
            return [("prefix", prefix)]
        if op not in ("eq", "in"):
            raise self.refuse(f"{name}: operator {op} has no kernel equivalent")
        return [("exact", v) for v in self.strings(val, name)]

    def add_union(self, node: Any) -> None:
        """`a or b`: accepted only as a union of positive tests on one target field."""
        fields: set[str] = set()
        values: list[tuple[str, Any]] = []
        for d in self.disjuncts(node):
            m = self.membership(d)
            if m is None or m[0] not in (EXE, "fd.name", "fd.sip", "fd.snet", "evt.type") \
                    or m[1] not in ("eq", "in", "eq_fzm"):
                raise self.refuse(f"`or` across {_describe(d, self.field_of)}: one kernel hook can only "
                                  "check a union of values of one field (split it into several rules)")
            fields.add(m[0])
            if m[0] == "evt.type":
                values.extend(("type", t) for t in self.strings(m[2], "evt.type"))
            else:
                values.extend(self.target_values(*m))
        if len(fields) != 1:
            raise self.refuse(f"`or` across fields {', '.join(sorted(fields))}: one kernel hook can only "
                              "check a union of values of one field (split it into several rules)")
        (name,) = fields
        if name == "evt.type":
            for _, t in values:
                if t not in EVENT_HOOKS:
                    raise self.refuse(f"evt.type {t!r} has no LSM hook")
                self.parts.hooks.add(EVENT_HOOKS[t])
            return
        self.parts.targets.setdefault(name, []).extend(values)


def _path(name: str, value: str) -> str:
    if not value.startswith("/"):
        raise _Refused(f"{name} {value!r}: the kernel sees absolute paths only")
    # bpf_d_path reports normalised paths, so anything else could never match.
    norm = os.path.normpath(value) + ("/" if value.endswith("/") and value != "/" else "")
    if norm != value:
        raise _Refused(f"{name} {value!r} is not normalised (the kernel reports {norm!r})")
    if len(value.encode()) > PATH_MAX:
        raise _Refused(f"{name} {value!r} is longer than {PATH_MAX} bytes")
    return value


def _network(name: str, kind: str, value: str) -> Network:
    if kind != "exact":
        raise _Refused(f"{name}: prefix match on an address; use fd.snet with a CIDR")
    try:
        if name == "fd.sip":
            addr = ipaddress.ip_address(value)
            return ipaddress.ip_network(f"{addr}/{addr.max_prefixlen}")
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise _Refused(f"{name} {value!r}: {exc}") from exc


def translate(name: str, action: str, condition_ast: Any, field_of: Callable[[str], str],
              global_mode: Mode = Mode.ENFORCE, where: str = "") -> DenySpec:
    """The kernel checks for one deny/audit rule; TranslateError if it has none."""
    label = f"{where}: rule {name!r}" if where else f"rule {name!r}"
    t = _Translator(field_of)
    try:
        for node, negated in t.conjuncts(condition_ast):
            t.add(node, negated)
        parts = t.parts
        if not parts.hooks:
            raise _Refused("the condition must name the operation with evt.type (execve, open, "
                           "connect, ...)")
        if len(parts.hooks) > 1:
            names = ", ".join(sorted(h.value for h in parts.hooks))
            raise _Refused(f"evt.type spans several hooks ({names}); write one rule per operation")
        (hook,) = parts.hooks
        allowed = {Hook.CONNECT: {"fd.sip", "fd.snet"}}.get(hook, {TARGET_FIELD.get(hook, "")})
        stray = set(parts.targets) - allowed
        if stray:
            raise _Refused(f"{', '.join(sorted(stray))} cannot be checked on {hook.value} "
                           f"(it checks {', '.join(sorted(allowed))})")
        values = [v for vs in parts.targets.values() for v in vs]
        if not values:
            raise _Refused(f"no {' or '.join(sorted(allowed))} test: the rule would deny every "
                           f"{hook.value}; name what to deny")
        if hook is not Hook.CONNECT and parts.port is not None:
            raise _Refused("fd.sport applies to connect only")
        if hook is not Hook.OPEN and parts.except_exes:
            raise _Refused("proc.exepath exceptions apply to open rules only")
        if action not in ("deny", "audit"):
            raise _Refused(f"action {action!r} is not deny or audit")
        mode = Mode.AUDIT if action == "audit" or global_mode is Mode.AUDIT else Mode.ENFORCE
        common: dict[str, Any] = {
            "rule": name, "hook": hook, "mode": mode, "uid": parts.uid,
            "cgroup_id": parts.cgroup_id,
            "except_exes": tuple(_path(EXE, e) for e in parts.except_exes),
        }
        if hook is Hook.CONNECT:
            nets = tuple(_network(f, k, v) for f, vs in parts.targets.items() for k, v in vs)
            return DenySpec(networks=nets, port=parts.port, **common)
        field_name = TARGET_FIELD[hook]
        exact = tuple(_path(field_name, v) for k, v in values if k == "exact")
        prefixes = tuple(_path(field_name, v) for k, v in values if k == "prefix")
        return DenySpec(paths=exact, prefixes=prefixes, **common)
    except _Refused as exc:
        raise TranslateError(f"{label}: cannot be enforced in the kernel: {exc}") from None


def translate_rules(rules: list[Any], field_of: Callable[[str], str],
                    global_mode: Mode = Mode.ENFORCE) -> list[DenySpec]:
    """Every deny/audit rule, or one TranslateError listing every rule that failed."""
    specs: list[DenySpec] = []
    errors: list[str] = []
    for r in rules:
        try:
            specs.append(translate(r.name, r.action, r.ast, field_of, global_mode,
                                   f"{r.file}:{r.line}"))
        except TranslateError as exc:
            errors.append(str(exc))
    if errors:
        raise TranslateError("\n".join(errors))
    return specs
