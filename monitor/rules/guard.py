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
from rule_engine.types import coerce_value

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


class FieldValue(ast.ExpressionBase):  # type: ignore[misc]
    """An event field read straight from the flat event.

    rule-engine's SymbolExpression re-derives and checks the value's type on every
    read (a third of evaluation time). The catalog already fixes each field's type,
    so only the conversion rule-engine's operators need is done: numbers to Decimal,
    lists to tuples.
    """

    __slots__ = ("convert", "key", "result_type")

    def __init__(self, context: Any, key: str, convert: Any, result_type: Any) -> None:
        self.context = context  # type: ignore[misc]  # a slot of the base class
        self.key = key
        self.convert = convert
        self.result_type = result_type

    def evaluate(self, thing: Any) -> Any:
        value = thing.get(self.key)
        if value is None or self.convert is None:
            return value
        return self.convert(value)


def _to_number(value: Any) -> Any:
    # bool is an int: leave it a bool, as rule-engine's own coercion does.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return coerce_value(value, verify_type=False)


def _to_tuple(value: Any) -> Any:
    return coerce_value(value, verify_type=False)


def _converter(tp: type) -> Any:
    if tp in (int, float):
        return _to_number
    if tp in (list, tuple):
        return _to_tuple
    return None  # str and bool values are used as they are


def _attr_names(node: Any) -> list[str]:
    names: list[str] = []
    for cls in type(node).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    names.extend(getattr(node, "__dict__", {}))
    return [n for n in dict.fromkeys(names) if n not in ("context", "__dict__", "__weakref__")]


class Contains(ast.ExpressionBase):  # type: ignore[misc]
    """`member in container` without rule-engine's per-evaluation typing of the container
    (which walks every member); a null container or a non-string probe of a string is
    simply false."""

    __slots__ = ("container", "member")
    result_type = rule_engine.DataType.BOOLEAN

    def __init__(self, context: Any, member: Any, container: Any) -> None:
        self.context = context  # type: ignore[misc]  # a slot of the base class
        self.member = member
        self.container = container

    def evaluate(self, thing: Any) -> bool:
        container = self.container.evaluate(thing)
        if container is None:
            return False
        member = self.member.evaluate(thing)
        if isinstance(container, str) and not isinstance(member, str):
            return False
        try:
            return member in container
        except TypeError:
            return False


class NotEqual(ast.ExpressionBase):  # type: ignore[misc]
    """`a != b` that is false when either side is null, as every other comparison is
    (rule-engine says null != "x" is true). `x != null` is left to rule-engine."""

    __slots__ = ("left", "right")
    result_type = rule_engine.DataType.BOOLEAN

    def __init__(self, context: Any, left: Any, right: Any) -> None:
        self.context = context  # type: ignore[misc]  # a slot of the base class
        self.left = left
        self.right = right

    def evaluate(self, thing: Any) -> bool:
        left = self.left.evaluate(thing)
        if left is None:
            return False
        right = self.right.evaluate(thing)
        if right is None:
            return False
        return type(left) is not type(right) or bool(left != right)


class NotMatching(ast.ExpressionBase):  # type: ignore[misc]
    """`a !~ "re"` / `a !~~ "re"`, false when a is null (rule-engine says true)."""

    __slots__ = ("left", "pattern", "search")
    result_type = rule_engine.DataType.BOOLEAN

    def __init__(self, context: Any, left: Any, pattern: Any, search: bool) -> None:
        self.context = context  # type: ignore[misc]  # a slot of the base class
        self.left = left
        self.pattern = pattern
        self.search = search

    def evaluate(self, thing: Any) -> bool:
        left = self.left.evaluate(thing)
        if not isinstance(left, str):
            return False
        found = self.pattern.search(left) if self.search else self.pattern.match(left)
        return found is None


def _null_false_negation(node: Any) -> tuple[str, Any, Any] | None:
    """Which null-true negated comparison node is, if any: ("ne"|"fzm"|"fzs", left, right)."""
    if (type(node) is ast.ComparisonExpression and node.type == "ne"
            and not isinstance(node.left, ast.NullExpression)
            and not isinstance(node.right, ast.NullExpression)):
        return "ne", node.left, node.right
    if (isinstance(node, ast.FuzzyComparisonExpression) and node.type in ("ne_fzm", "ne_fzs")
            and isinstance(node.right, ast.StringExpression)):
        return node.type[3:], node.left, node._right
    return None


def read_fields_directly(node: Any, to_field: dict[str, str], types: dict[str, type]) -> Any:
    """node with catalog-field symbols read by FieldValue, `in` tests done by FrozenIn
    (literal containers) or Contains, and `!=`/`!~` false on null, everywhere beneath it."""
    if isinstance(node, ast.SymbolExpression):
        if node.scope is None and node.name in to_field:
            field = to_field[node.name]
            return FieldValue(node.context, field, _converter(types[field]), node.result_type)
        return node
    negation = _null_false_negation(node)
    if negation is not None:
        kind, left, right = negation
        left = read_fields_directly(left, to_field, types)
        if kind == "ne":
            return NotEqual(node.context, left, read_fields_directly(right, to_field, types))
        return NotMatching(node.context, left, right, search=kind == "fzs")
    if isinstance(node, ast.ContainsExpression):
        member = read_fields_directly(node.member, to_field, types)
        values = _literal_members(node.container)
        if values is not None:
            return FrozenIn(node.context, member, values)
        return Contains(node.context, member, read_fields_directly(node.container, to_field, types))
    for name in _attr_names(node):
        child = getattr(node, name, None)
        if isinstance(child, (ast.ExpressionBase, ast.Statement)):
            setattr(node, name, read_fields_directly(child, to_field, types))
        elif isinstance(child, tuple) and any(isinstance(c, ast.ExpressionBase) for c in child):
            setattr(node, name, tuple(read_fields_directly(c, to_field, types) for c in child))
    return node
