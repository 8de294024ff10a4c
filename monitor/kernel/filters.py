"""Which file paths the loaded rules can need from open(): the kernel's prefix filter.

Every open on the host is a syscall the rules may want; most are opens of libraries,
caches and /proc that no rule looks at. When every rule that can see an open provably
requires `fd.name` under some prefix (`startswith`, `==`, `in`, `fd.directory`), the
kernel drops opens of canonical absolute paths outside those prefixes. The kernel
always passes what it cannot judge from the text: relative paths, and paths with "//"
or "/." in them (which normalise to something else, e.g. /./etc/shadow, or name a
dotfile). So a condition on `"../" in fd.nameraw` needs nothing more from the filter.

Dotted paths come for free: a path with a "/." in it is never judged by prefix, neither as
given nor as the kernel resolved it (bpf/sensor.bpf.c keeps an open whose resolved path is
not canonical), so a condition that can only hold for such a path (`"/.ssh/" in fd.name`,
`fd.filename == ".bash_history"`, `fd.filename startswith "."`, a regex search of fd.name
for an escaped "/.") needs nothing from the filter either.

The analysis is conservative: anything it does not understand means "every path",
and then there is no filter. The answer is a superset; rules still decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rule_engine import ast

from monitor.events.catalog import OPEN_TYPES
from monitor.rules.condition import literal_prefix
from monitor.rules.index import literal_strings

# Fields only other event types carry: on an open event a comparison with one of them
# is false (ringwatch's rules treat a missing field as null: every comparison fails).
NOT_ON_OPEN = frozenset({
    "evt.arg.oldpath", "evt.arg.newpath", "evt.arg.target", "evt.arg.linkpath",
    "evt.arg.source", "evt.arg.fstype", "evt.arg.domain", "evt.arg.sotype", "evt.arg.proto",
    "evt.arg.request", "evt.arg.pid", "evt.arg.uid", "evt.arg.gid", "evt.arg.cmd",
    "evt.arg.name", "evt.arg.fd", "evt.arg.oldfd", "evt.arg.newfd", "fd.sockfamily", "fd.rip",
    "fd.rport", "fd.sip", "fd.sport", "fd.snet", "proc.exit_code", "proc.exit_signal",
    "proc.child_pid",
})


# What a condition needs from one field: None, anything; else it can only hold when
# the field matches one of these (paths: starts with one; values: equals one).
Need = frozenset[str] | None
NOTHING: frozenset[str] = frozenset()


def _field_name(field_of: Callable[[str], str], node: Any) -> str | None:
    """The Falco field a plain symbol stands for, else None."""
    if isinstance(node, ast.SymbolExpression) and node.scope is None:
        try:
            return field_of(node.name)
        except KeyError:
            return None
    return None


def _prefixes_of_pattern(pattern: str) -> frozenset[str] | None:
    """`^/a/` -> {"/a/"}; `^(?:/a/|/b/)` (startswith a list) -> {"/a/", "/b/"}."""
    one = literal_prefix(pattern)
    if one is not None:
        return frozenset({one})
    if pattern.startswith("^(?:") and pattern.endswith(")"):
        out = set()
        for alt in pattern[4:-1].split("|"):
            lit = literal_prefix("^" + alt)
            if lit is None:
                return None
            out.add(lit)
        return frozenset(out)
    return None


def _need(node: Any, leaf: Callable[[Any], Need],
          narrow: Callable[[frozenset[str], frozenset[str]], frozenset[str]]) -> Need:
    """Walks `and`/`or` down to the comparisons `leaf` understands.

    `or` unites; `and` keeps what `narrow` makes of both sides (each side alone is a
    necessary condition). Anything else is up to `leaf`; None means "any".
    """
    if isinstance(node, ast.Statement):
        return _need(node.expression, leaf, narrow)
    if isinstance(node, ast.LogicExpression):
        left, right = _need(node.left, leaf, narrow), _need(node.right, leaf, narrow)
        if node.type == "and":
            if left is None or right is None:
                return right if left is None else left
            return narrow(left, right)
        return None if left is None or right is None else left | right
    return leaf(node)


def _union_over(rules: Iterable[Any], types: frozenset[str], leaf: Callable[[Any], Need],
                narrow: Callable[[frozenset[str], frozenset[str]], frozenset[str]]) -> Need:
    """What the rules that can see one of `types` need together, or None: anything."""
    out: set[str] = set()
    for rule in rules:
        if rule.event_types is not None and not (rule.event_types & types):
            continue
        need = _need(rule.ast, leaf, narrow)
        if need is None:
            return None
        out |= need
    return frozenset(out)


def _fewer(a: frozenset[str], b: frozenset[str]) -> frozenset[str]:
    # Prefix sets do not intersect as sets; either side is sound, the smaller is tighter.
    return a if len(a) <= len(b) else b


class _PathLeaf:
    """Prefixes of fd.name a comparison requires of an open."""

    def __init__(self, field_of: Callable[[str], str]) -> None:
        self.field_of = field_of

    def _field(self, node: Any) -> str | None:
        return _field_name(self.field_of, node)

    def __call__(self, node: Any) -> Need:
        if isinstance(node, ast.BooleanExpression) and node.value is False:
            return NOTHING
        if not isinstance(node, (ast.ComparisonExpression, ast.ContainsExpression)):
            return None
        sides = ([node.member, node.container] if isinstance(node, ast.ContainsExpression)
                 else [node.left, node.right])
        fields = [f for f in (self._field(s) for s in sides) if f is not None]
        if any(f in NOT_ON_OPEN for f in fields):
            return NOTHING
        if isinstance(node, ast.ContainsExpression):
            member, container = self._field(node.member), self._field(node.container)
            if container == "fd.nameraw" and isinstance(node.member, ast.StringExpression) \
                    and ".." in node.member.value:
                return NOTHING  # only non-canonical or relative paths: always passed
            if container == "fd.name" and isinstance(node.member, ast.StringExpression) \
                    and "/." in node.member.value:
                return NOTHING  # only dotted paths: always passed
            values = literal_strings(node.container)
            if values is not None and member == "fd.name":
                return frozenset(values)
            if values is not None and member == "fd.directory":
                return frozenset(_dir_prefix(v) for v in values)
            if values is not None and member == "fd.filename" and values \
                    and all(v.startswith(".") for v in values):
                return NOTHING  # a dotfile's path has "/." in it
            return None
        left, right = self._field(node.left), self._field(node.right)
        field, lit = (left, node.right) if left is not None else (right, node.left)
        if not isinstance(lit, ast.StringExpression):
            return None
        if isinstance(node, ast.FuzzyComparisonExpression):
            if node.type == "eq_fzm" and field == "fd.name" and lit.value == PROC_MEM_PATTERN:
                return frozenset({PROC_MEM})
            if node.type == "eq_fzm" and field == "fd.name":
                return _prefixes_of_pattern(lit.value)
            if node.type == "eq_fzs" and field == "fd.name" and lit.value.startswith("/\\."):
                return NOTHING  # a search for a literal "/.": only dotted paths match
            if node.type == "eq_fzm" and field == "fd.filename" and lit.value.startswith("^\\."):
                return NOTHING  # fd.filename startswith ".": a dotfile
            return None
        if type(node) is ast.ComparisonExpression and node.type == "eq":
            if field == "fd.filename" and lit.value.startswith("."):
                return NOTHING  # a dotfile
            if field == "fd.name":
                return frozenset({lit.value})
            if field == "fd.directory":
                return frozenset({_dir_prefix(lit.value)})
        return None


def _dir_prefix(directory: str) -> str:
    return directory.rstrip("/") + "/"


def open_path_prefixes(rules: Iterable[Any], field_of: Callable[[str], str]) -> frozenset[str] | None:
    """Prefixes the kernel may keep opens to, or None: every open is needed.

    `rules` are the enabled rules evaluated in userspace (deny and audit rules are
    decided by the kernel's LSM programs and need no records).
    """
    return _union_over(rules, OPEN_TYPES, _PathLeaf(field_of), _fewer)


class _ValueLeaf:
    """Which literal values of one field a comparison needs: `f == "x"`, `f in [...]`."""

    def __init__(self, field_of: Callable[[str], str], field: str) -> None:
        self.field_of = field_of
        self.field = field

    def _is_field(self, node: Any) -> bool:
        return _field_name(self.field_of, node) == self.field

    def __call__(self, node: Any) -> Need:
        if type(node) is ast.ComparisonExpression and node.type == "eq":
            for sym, lit in ((node.left, node.right), (node.right, node.left)):
                if self._is_field(sym) and isinstance(lit, ast.StringExpression):
                    return frozenset({lit.value})
        if isinstance(node, ast.ContainsExpression) and self._is_field(node.member):
            values = literal_strings(node.container)
            return None if values is None else frozenset(values)
        return None


def bpf_commands(rules: Iterable[Any], field_of: Callable[[str], str]) -> frozenset[str] | None:
    """bpf() commands (BPF_PROG_LOAD, ...) some rule can match, or None: all of them.

    Most bpf() calls on a host are map reads by monitoring agents (ringwatch's own
    instances included): with the default rules only program loads are wanted.
    """
    return _union_over(rules, frozenset({"bpf"}), _ValueLeaf(field_of, "evt.arg.cmd"),
                       frozenset.intersection)


# The one path pattern the kernel knows besides prefixes (bpf/sensor.bpf.c proc_mem_path):
# a rule condition `fd.name =~ PROC_MEM_PATTERN` needs PROC_MEM from the filter, which the
# sensor turns into its own switch rather than a trie entry.
PROC_MEM_PATTERN = "^/proc/[0-9]+/(mem|maps)$"
PROC_MEM = "/proc/<pid>/(mem|maps)"

PREFIX_ANY = 1
PREFIX_WRITES_ONLY = 2  # RW_PFX_WRITES_ONLY in bpf/sensor.bpf.c


def open_prefix_values(prefixes: frozenset[str], write_prefixes: frozenset[str]) -> dict[str, int]:
    """The trie's entries: prefix -> PREFIX_ANY or PREFIX_WRITES_ONLY.

    The trie answers with the longest matching prefix, so a writes-only entry inside a
    prefix that wants every open would hide that prefix's reads: it becomes PREFIX_ANY.
    """
    out = {p: PREFIX_ANY for p in prefixes}
    for w in write_prefixes:
        if w not in out:
            covered = any(w.startswith(p) for p in prefixes)
            out[w] = PREFIX_ANY if covered else PREFIX_WRITES_ONLY
    return out
