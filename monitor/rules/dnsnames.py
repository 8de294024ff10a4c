"""The names loaded rules compare fd.sip.name with: what monitor.events.dns resolves.

Read from each rule's parsed condition (both syntaxes end up as the same rule-engine
AST): the string literals inside a comprehension over fd.sip.name (Falco's `=` and `in`,
lowered by monitor.rules.falco.lower) or tested for membership in it (`"N" in
fd.sip.name`, ringwatch's syntax). Literals that are no host name (a regex, text with
spaces) are never sent to the resolver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rule_engine import ast

from monitor.netaddr import is_hostname

FIELD = "fd.sip.name"  # the field monitor.events.dns fills


def _attrs(node: Any) -> Iterator[Any]:
    """A node's attribute values: rule-engine's classes mix __slots__ and __dict__."""
    for cls in type(node).__mro__:
        slots = getattr(cls, "__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name != "__dict__" and hasattr(node, name):
                yield getattr(node, name)
    yield from getattr(node, "__dict__", {}).values()


def _children(node: Any) -> Iterator[Any]:
    for value in _attrs(node):
        if isinstance(value, (ast.ExpressionBase, ast.Statement)):
            yield value
        elif isinstance(value, (tuple, list)):
            yield from (v for v in value if isinstance(v, ast.ExpressionBase))


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, ast.StringExpression) and isinstance(node.value, str):
        yield node.value
    for child in _children(node):
        yield from _strings(child)


def _is_field(node: Any, field_of: Callable[[str], str]) -> bool:
    if not isinstance(node, ast.SymbolExpression) or node.scope is not None:
        return False
    try:
        return field_of(node.name) == FIELD
    except KeyError:
        return False


def names_in(node: Any, field_of: Callable[[str], str]) -> set[str]:
    out: set[str] = set()
    if isinstance(node, ast.ComprehensionExpression) and _is_field(node.iterable, field_of):
        if node.condition is not None:
            out.update(_strings(node.condition))
    elif isinstance(node, ast.ContainsExpression) and _is_field(node.container, field_of):
        out.update(_strings(node.member))
    for child in _children(node):
        out |= names_in(child, field_of)
    return out


def dns_names(asts: Iterable[Any], field_of: Callable[[str], str]) -> frozenset[str]:
    names: set[str] = set()
    for tree in asts:
        names |= names_in(tree, field_of)
    return frozenset(n for n in names if is_hostname(n))
