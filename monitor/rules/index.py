"""Which event types a parsed condition can match, read from its rule-engine AST.

The answer is a superset: None means "any type". `and` intersects, `or` unites, and
anything that is not `evt.type == "x"` / `evt.type in [...]` leaves the type open
(`not` included: `not evt.type == "x"` still matches almost every type).
"""

from __future__ import annotations

from typing import Any

from rule_engine import ast


def event_types(node: Any, type_symbol: str) -> frozenset[str] | None:
    if isinstance(node, ast.Statement):
        return event_types(node.expression, type_symbol)
    if isinstance(node, ast.LogicExpression):
        left = event_types(node.left, type_symbol)
        right = event_types(node.right, type_symbol)
        if node.type == "and":
            if left is None:
                return right
            if right is None:
                return left
            return left & right
        if left is None or right is None:
            return None
        return left | right
    if isinstance(node, ast.ComparisonExpression) and type(node) is ast.ComparisonExpression:
        if node.type != "eq":
            return None
        for sym, lit in ((node.left, node.right), (node.right, node.left)):
            if _is_symbol(sym, type_symbol) and isinstance(lit, ast.StringExpression):
                return frozenset({lit.value})
        return None
    if isinstance(node, ast.ContainsExpression) and _is_symbol(node.member, type_symbol):
        values = literal_strings(node.container)
        return None if values is None else frozenset(values)
    if isinstance(node, ast.BooleanExpression) and node.value is False:
        return frozenset()
    return None


def _is_symbol(node: Any, name: str) -> bool:
    return isinstance(node, ast.SymbolExpression) and node.name == name and node.scope is None


def literal_strings(node: Any) -> list[str] | None:
    """The members of a literal array/set of strings, else None."""
    if not isinstance(node, (ast.ArrayExpression, ast.SetExpression)):
        return None
    out: list[str] = []
    for member in node.value:
        if not isinstance(member, ast.StringExpression):
            return None
        out.append(member.value)
    return out
