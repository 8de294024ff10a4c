"""A Falco condition AST lowered to ringwatch's rule-engine condition text.

The output uses catalog field names and names macros bare, exactly as a ringwatch-syntax
condition would, so the existing expansion (monitor.rules.condition) then expands the
macros (each in its own file's syntax), turns field names into identifiers, and
rule-engine type-checks and evaluates it. Lists are resolved here, because Falco's
items are typed by the field they meet (`fd.sport in (ssh_ports)` holds numbers).

Operator by operator (S is the field's expression, v the value, escaped):
    = == != < <= > >=   S == v, S != v, ...
    in / intersects     S in [v, ...]
    contains            "v" in S          icontains  "v" in S&.as_lower (v lowered)
    startswith          S =~ "^v"         endswith   S =~ "(?s).*v\\Z"
    bcontains/bstartswith  as contains/startswith, v given in hex (Falco's spelling)
    glob / iglob        S =~ fnmatch.translate(v) (`*` crosses `/`, as libsinsp's glob)
    regex               S =~ "(?:v)\\Z" (RE2 ANCHOR_BOTH: the whole value must match)
    pmatch              S =~ "^(?:/a(?:/|\\Z)|...)": S is one of the paths or below one
    exists              S != null
A multi-valued field (unindexed `proc.aname`) holds when any element does:
`[rw_x for rw_x in proc.aname if <check on rw_x>]` (a non-empty list is true).
Every emitted piece records the offset of the Falco text it came from.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.netaddr import addr_hex
from monitor.rules.condition import quote as engine_quote
from monitor.rules.falco.ast import (
    And,
    BinaryCheck,
    Expr,
    FieldRef,
    Ident,
    ListValue,
    Not,
    Operand,
    Or,
    Transform,
    UnaryCheck,
    Value,
)
from monitor.rules.falco.bridge import Bridge, MissingField, Resolved, UnknownField
from monitor.rules.falco.parser import quote as falco_quote
from monitor.rules.falco.parser import unescape

ELEMENT = "rw_x"  # the comprehension variable for multi-valued fields
SIP_NAME = "fd.sip.name"  # names resolved in the background; only =, != and in, as in Falco
# Falco's filter-only address checks (libsinsp compare_ip, compare_net and the fd.snet
# extraction): the ends each looks at, as 32-hex-digit keys (fd.cip.hex, fd.sip.hex, set
# from the kernel's socket on connect). `=`/`in` hold when one of the ends is (in) one of
# the values; `!=` when none is.
ADDR_CHECKS: dict[str, tuple[bool, tuple[str, ...]]] = {  # name -> (CIDR values?, ends)
    "fd.ip": (False, ("fd.cip.hex", "fd.sip.hex")),
    "fd.net": (True, ("fd.cip.hex", "fd.sip.hex")),
    "fd.cnet": (True, ("fd.cip.hex",)),
    "fd.snet": (True, ("fd.sip.hex",)),
    "fd.lnet": (True, ("fd.cip.hex",)),  # connect: the local end is the client
    "fd.rnet": (True, ("fd.sip.hex",)),
}
_TYPE_NAMES = {str: "string", int: "number", bool: "boolean", list: "list"}


class LowerError(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


@dataclass
class Lowered:
    text: str
    marks: list[tuple[int, int]]  # (offset in text, offset in the Falco condition), ascending

    def source_pos(self, offset: int) -> int:
        best = 0
        for out, src in self.marks:
            if out > offset:
                break
            best = src
        return best


@dataclass
class _Out:
    parts: list[str] = field(default_factory=list)
    marks: list[tuple[int, int]] = field(default_factory=list)
    size: int = 0

    def emit(self, text: str, pos: int) -> None:
        self.marks.append((self.size, pos))
        self.parts.append(text)
        self.size += len(text)


def list_item_text(item: Any) -> str:
    """A list item as Falco reads it: YAML `'"a b"'` is the quoted string `a b`."""
    text = str(item)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return unescape(text)
    return text


@dataclass
class Scope:
    """What a lowering may refer to: fields, lists (resolved items), macro names, event types."""

    bridge: Bridge
    list_items: Callable[[str], list[Any]] | None
    lists: Iterable[str]
    macros: Iterable[str]
    event_types: frozenset[str] = frozenset()


class Lowerer:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.lists = set(scope.lists)
        self.macros = set(scope.macros)

    def lower(self, node: Expr) -> Lowered:
        out = _Out()
        self._expr(node, out)
        return Lowered("".join(out.parts), out.marks)

    # boolean structure ---------------------------------------------------------------
    def _expr(self, node: Expr, out: _Out) -> None:
        if isinstance(node, (And, Or)):
            word = " and " if isinstance(node, And) else " or "
            out.emit("(", node.pos)
            for i, child in enumerate(node.children):
                if i:
                    out.emit(word, child.pos)
                self._expr(child, out)
            out.emit(")", node.pos)
        elif isinstance(node, Not):
            out.emit("not (", node.pos)
            self._expr(node.child, out)
            out.emit(")", node.pos)
        elif isinstance(node, Ident):
            out.emit(self._macro(node), node.pos)
        elif isinstance(node, UnaryCheck):
            subject = self._operand(node.left)
            target = subject.text
            out.emit(f"({target} != null)", node.pos)
        else:
            out.emit(self._check(node), node.pos)

    def _macro(self, node: Ident) -> str:
        if node.name in self.macros:
            return node.name
        if node.name in self.lists:
            raise LowerError(node.pos, f"list {node.name!r} used as a condition "
                                       f"(write `field in ({node.name})`)")
        close = difflib.get_close_matches(node.name, sorted(self.macros), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LowerError(node.pos, f"undefined macro {node.name!r}{hint}")

    # operands --------------------------------------------------------------------------
    def _operand(self, node: Operand) -> Resolved:
        if isinstance(node, FieldRef):
            try:
                return self.scope.bridge.resolve(node.name, node.arg, node.pos)
            except UnknownField as exc:
                raise LowerError(exc.pos, exc.message) from None
        inner = self._operand(node.args[0]) if node.args else None
        if inner is None or len(node.args) != 1:
            raise MissingField(node.pos, f"{node.name}()", kind="transformer")
        if node.name == "val":
            return inner
        if inner.many:
            raise LowerError(node.pos, f"{node.name}() of a multi-valued field is not supported")
        if node.name in ("tolower", "toupper"):
            self._need(inner, str, f"{node.name}()", node.pos)
            attr = "as_lower" if node.name == "tolower" else "as_upper"
            return Resolved(f"{inner.text}&.{attr}", str)
        if node.name == "len":
            return Resolved(f"{inner.text}&.length", int)
        has_filename = "fd.filename" in self.scope.bridge.names.types
        if node.name == "basename" and inner.text == "fd.name" and has_filename:
            return Resolved("fd.filename", str)
        raise MissingField(node.pos, f"{node.name}()", kind="transformer")

    @staticmethod
    def _need(subject: Resolved, tp: type, what: str, pos: int) -> None:
        if subject.type is not tp:
            have = _TYPE_NAMES.get(subject.type, subject.type.__name__)
            raise LowerError(pos, f"{what} needs a {_TYPE_NAMES[tp]} field, {subject.text} is a {have}")

    # checks ----------------------------------------------------------------------------
    def _check(self, node: BinaryCheck) -> str:
        if (isinstance(node.left, FieldRef) and node.left.name == "evt.num" and node.left.arg is None
                and "evt.num" not in self.scope.bridge.names.types and isinstance(node.right, Value)
                and node.right.text == "0" and node.op in ("=", "==", "!=")):
            # Falco numbers events from 1: `evt.num=0` is its idiom for "never" (never_true).
            return "false" if node.op != "!=" else "true"
        left = node.left
        if (isinstance(left, FieldRef) and left.name in ADDR_CHECKS and left.arg is None
                and not isinstance(node.right, (FieldRef, Transform))
                and all(e in self.scope.bridge.names.types for e in ADDR_CHECKS[left.name][1])):
            return self._addr_check(left.name, node.op, node.right, node.pos)
        subject = self._operand(node.left)
        name = node.left.name if isinstance(node.left, FieldRef) else f"{node.left.name}()"
        right = node.right
        if isinstance(right, (FieldRef, Transform)):
            other = self._operand(right)
            return self._field_vs_field(subject, node.op, other, node.pos)
        if subject.text == SIP_NAME:
            return self._sip_name(subject, node.op, right, node.pos)
        var = ELEMENT if subject.many else subject.text
        test = self._test(var, subject.type, name, node.op, right, node.pos)
        if subject.many:
            return f"[{ELEMENT} for {ELEMENT} in {subject.text} if {test}]"
        return test

    def _addr_check(self, name: str, op: str, right: Any, pos: int) -> str:
        cidr, ends = ADDR_CHECKS[name]
        if op not in ("=", "==", "!=", "in"):
            raise LowerError(pos, f"{name} supports only =, != and in (as in Falco), not {op!r}")
        ranges = []
        for text, vpos in self._values(right, pos):
            try:
                net = ipaddress.ip_network(text, strict=False) if cidr else ipaddress.ip_address(text)
            except ValueError:
                what = "a network (a.b.c.d/n)" if cidr else "an IP address"
                raise LowerError(vpos, f"{name} needs {what}, got {text!r}") from None
            if isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                lo, hi = addr_hex(str(net.network_address)), addr_hex(str(net.broadcast_address))
            else:
                lo = hi = addr_hex(str(net))
            ranges.append((lo, hi))

        def within(end: str) -> str:
            tests = [f"{end} == {engine_quote(lo)}" if lo == hi else
                     f"({end} >= {engine_quote(lo)} and {end} <= {engine_quote(hi)})" for lo, hi in ranges]
            return "(" + (" or ".join(tests) or "false") + ")"

        if op == "!=":
            return "(" + " and ".join(f"({e} != null and not {within(e)})" for e in ends) + ")"
        return "(" + " or ".join(f"({e} != null and {within(e)})" for e in ends) + ")"

    def _sip_name(self, subject: Resolved, op: str, right: Any, pos: int) -> str:
        """libsinsp's compare_domain: `= N` holds when fd.sip is one of N's addresses, `in`
        when it is one of any listed name's, `!=` when it is none of N's (and only on an
        IP socket event: fd.sip.name is unset elsewhere). fd.sip.name is the list of the
        watched names whose addresses hold fd.sip (monitor/events/dns.py)."""
        if op in ("=", "==", "!=", "in"):
            test = self._test(ELEMENT, str, SIP_NAME, "=" if op == "!=" else op, right, pos)
            any_of = f"[{ELEMENT} for {ELEMENT} in {subject.text} if {test}]"
            if op == "!=":
                return f"({subject.text} != null and not {any_of})"
            return any_of
        raise LowerError(pos, f"{SIP_NAME} supports only =, != and in (as in Falco), not {op!r}")

    def _field_vs_field(self, a: Resolved, op: str, b: Resolved, pos: int) -> str:
        ops = {"=": "==", "==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
        if a.many or b.many:
            raise LowerError(pos, "comparing two multi-valued fields is not supported")
        if op in ops:
            return f"({a.text} != null and {a.text} {ops[op]} {b.text})"
        if op == "contains":
            return f"({a.text} != null and {b.text} in {a.text})"
        raise LowerError(pos, f"'{op}' with a field on its right (val()) is not supported")

    def _values(self, right: ListValue | Ident | Value, pos: int) -> list[tuple[str, int]]:
        """The items of a list operand, list names resolved (Falco: items may name lists)."""
        if isinstance(right, Value):
            return [(right.text, right.pos)]
        if isinstance(right, Ident):
            if right.name not in self.lists:
                close = difflib.get_close_matches(right.name, sorted(self.lists), n=1, cutoff=0.75)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise LowerError(right.pos, f"undefined list {right.name!r}{hint}")
            return [(list_item_text(v), right.pos) for v in self._list(right.name)]
        out: list[tuple[str, int]] = []
        for item in right.items:
            if not item.quoted and item.text in self.lists:
                out.extend((list_item_text(v), item.pos) for v in self._list(item.text))
            else:
                out.append((item.text, item.pos))
        return out

    def _list(self, name: str) -> list[Any]:
        assert self.scope.list_items is not None
        return self.scope.list_items(name)

    def _literal(self, text: str, tp: type, name: str, pos: int) -> str:
        if tp is int:
            try:
                return str(int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text))
            except ValueError:
                try:
                    return repr(float(text))
                except ValueError:
                    raise LowerError(pos, f"{name} is a number; {text!r} is a string") from None
        if tp is bool:
            if text.lower() in ("true", "false"):
                return text.lower()
            raise LowerError(pos, f"{name} is a boolean; {text!r} is a string (write true or false)")
        if name == "evt.type" and self.scope.event_types and text not in self.scope.event_types:
            close = difflib.get_close_matches(text, sorted(self.scope.event_types), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise LowerError(pos, f"unknown event type {text!r}{hint}")
        return engine_quote(text)

    def _test(self, s: str, tp: type, name: str, op: str, right: Any, pos: int) -> str:
        base, _, mod = op.partition(" ")
        if mod:
            if not isinstance(right, (ListValue, Ident)):
                raise LowerError(pos, f"'{op}' needs a list on its right")
            # libsinsp's matches_{any,all,one}_rhs: the operator against each item.
            tests = [self._test(s, tp, name, base, Value(v, True, p), p) for v, p in self._values(right, pos)]
            if not tests:
                return "false"
            if mod == "anyof":
                return "(" + " or ".join(tests) + ")"
            if mod == "allof":
                return "(" + " and ".join(tests) + ")"
            return "(" + " + ".join(f"(({t}) ? 1 : 0)" for t in tests) + " == 1)"
        if op in ("in", "intersects", "pmatch"):
            items = self._values(right, pos)
            if op == "pmatch":
                self._need(Resolved(s, tp), str, "pmatch", pos)
                alts = [re.escape(v) if v.endswith("/") else re.escape(v) + r"(?:/|\Z)" for v, _ in items]
                return f"{s} =~ {engine_quote('^(?:' + '|'.join(alts) + ')')}" if alts else "false"
            lits = [self._literal(v, tp, name, p) for v, p in items]
            return f"{s} in [{', '.join(lits)}]" if lits else "false"
        if isinstance(right, (ListValue, Ident)):
            raise LowerError(pos, f"'{op}' needs a single value, not a list")
        assert isinstance(right, Value)
        v = right.text
        cmp_ops = {"=": "==", "==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
        if op in cmp_ops:
            if op in ("<", "<=", ">", ">=") and tp is not int:
                raise LowerError(pos, f"'{op}' needs a number field; {name} is a {_TYPE_NAMES.get(tp, tp)}")
            return f"{s} {cmp_ops[op]} {self._literal(v, tp, name, right.pos)}"
        if tp is not str:
            raise LowerError(pos, f"'{op}' needs a string field; {name} is a {_TYPE_NAMES.get(tp, tp)}")
        if op in ("bcontains", "bstartswith"):
            try:
                v = bytes.fromhex(v).decode("utf-8", "surrogateescape")
            except ValueError:
                raise LowerError(right.pos, f"{op} needs hex bytes (e.g. 7f454c46), got {v!r}") from None
            op = op[1:]
        if op == "contains":
            return f"{engine_quote(v)} in {s}"
        if op == "icontains":
            return f"{engine_quote(v.lower())} in {s}&.as_lower"
        if op == "startswith":
            return f"{s} =~ {engine_quote('^' + re.escape(v))}"
        if op == "endswith":
            return f"{s} =~ {engine_quote('(?s).*' + re.escape(v) + chr(92) + 'Z')}"
        if op == "glob":
            return f"{s} =~ {engine_quote(fnmatch.translate(v))}"
        if op == "iglob":
            return f"{s}&.as_lower =~ {engine_quote(fnmatch.translate(v.lower()))}"
        if op == "regex":
            try:
                re.compile(v)
            except re.error as exc:
                raise LowerError(right.pos, f"invalid regex {v!r}: {exc}") from None
            return f"{s} =~ {engine_quote('(?:' + v + ')' + chr(92) + 'Z')}"
        raise LowerError(pos, f"unsupported operator {op!r}")


def exception_condition(fields: list[str], comps: list[str], rows: list[list[Any]],
                        list_names: Iterable[str]) -> str | None:
    """Falco's exceptions as one Falco condition: `(f1 c1 v1 and f2 c2 v2) or (...)`."""
    known = set(list_names)
    out: list[str] = []
    for row in rows:
        parts = []
        for f, comp, value in zip(fields, comps, row, strict=True):
            if comp in ("in", "pmatch", "intersects"):
                if isinstance(value, str) and value in known:
                    rhs = f"({value})"
                else:
                    items = value if isinstance(value, list) else [value]
                    rhs = "(" + ", ".join(_falco_item(v, known) for v in items) + ")"
            else:
                rhs = falco_quote(str(value).lower() if isinstance(value, bool) else str(value))
            parts.append(f"{f} {comp} {rhs}")
        out.append("(" + " and ".join(parts) + ")")
    return " or ".join(out) if out else None


def _falco_item(value: Any, lists: set[str]) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if text in lists else falco_quote(list_item_text(text))
