"""Evaluation-only rewrites of a parsed condition: null-safe predicates, fast membership.

rule-engine raises when an ordering comparison, an index or a containment test meets
null (a field the event does not have). ringwatch's contract is that such a comparison
is false, so each predicate under and/or/not is wrapped to turn those errors into False.
`x in [literal, ...]` is replaced by a frozenset lookup: rule-engine rebuilds and
type-checks the literal on every evaluation, O(items) each time.
These rewrites are applied to a second parse; consumers of the AST see the plain one.
"""

from __future__ import annotations

from typing import Any

import rule_engine
from rule_engine import ast

NULL_ERRORS: tuple[type[Exception], ...] = (
    rule_engine.errors.EvaluationError, TypeError, LookupError, AttributeError,
)


class NullIsFalse(ast.ExpressionBase):  # type: ignore[misc]  # rule-engine's base is untyped
    __slots__ = ("inner",)
    result_type = rule_engine.DataType.BOOLEAN

    def __init__(self, context: Any, inner: Any) -> None:
        self.context = context  # type: ignore[misc]  # a slot of the base class
        self.inner = inner

    def evaluate(self, thing: Any) -> Any:
        try:
            return self.inner.evaluate(thing)
        except NULL_ERRORS:
            return False


class FrozenIn(ast.ExpressionBase):  # type: ignore[misc]
    __slots__ = ("member", "values")
    result_type = rule_engine.DataType.BOOLEAN

    def __init__(self, context: Any, member: Any, values: frozenset[Any]) -> None:
        self.context = context  # type: ignore[misc]  # a slot of the base class
        self.member = member
        self.values = values

    def evaluate(self, thing: Any) -> bool:
        try:
            return self.member.evaluate(thing) in self.values
        except TypeError:  # an unhashable member (a mapping) is in no literal list
            return False


def _literal_members(node: Any) -> frozenset[Any] | None:
    if not isinstance(node, (ast.ArrayExpression, ast.SetExpression)):
        return None
    values = []
    for m in node.value:
        if not isinstance(m, (ast.StringExpression, ast.FloatExpression, ast.BooleanExpression)):
            return None
        values.append(m.value)
    return frozenset(values)


def _predicate(node: Any) -> Any:
    if isinstance(node, ast.ContainsExpression):
        values = _literal_members(node.container)
        if values is not None:
            return NullIsFalse(node.context, FrozenIn(node.context, node.member, values))
    if isinstance(node, (ast.LogicExpression, ast.UnaryExpression)):
        return guard(node)
    if isinstance(node, ast.LiteralExpressionBase):
        return node
    return NullIsFalse(node.context, node)


def guard(node: Any) -> Any:
    """node with every predicate beneath its and/or/not structure made null-safe."""
    if isinstance(node, ast.Statement):
        node.expression = _predicate(node.expression)
        return node
    if isinstance(node, ast.LogicExpression):
        node.left = _predicate(node.left)
        node.right = _predicate(node.right)
        return node
    if isinstance(node, ast.UnaryExpression) and node.type == "not":
        node.right = _predicate(node.right)
        return node
    return node
