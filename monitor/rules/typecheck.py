"""Which field a rule-engine "data type mismatch" is about, and the two types.

rule-engine rejects `proc.name > 3` with only "data type mismatch". The condition is
parsed again with every symbol untyped (so it parses), and the first comparison of a
catalog field with a literal or field of another type is named.
"""

from __future__ import annotations

from typing import Any

import rule_engine
from rule_engine import ast

from monitor.rules.names import FieldNames

_LITERALS = {
    ast.StringExpression: "string", ast.FloatExpression: "number", ast.BooleanExpression: "boolean",
    ast.ArrayExpression: "list", ast.SetExpression: "list", ast.MappingExpression: "mapping",
}
_FIELD_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "list"}
_ORDERED = ("lt", "le", "gt", "ge")


def _children(node: Any) -> list[Any]:
    out: list[Any] = []
    for cls in type(node).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            child = getattr(node, name, None)
            if isinstance(child, (ast.ExpressionBase, ast.Statement)):
                out.append(child)
            elif isinstance(child, tuple):
                out.extend(c for c in child if isinstance(c, ast.ExpressionBase))
    for child in getattr(node, "__dict__", {}).values():
        if isinstance(child, (ast.ExpressionBase, ast.Statement)):
            out.append(child)
        elif isinstance(child, tuple):
            out.extend(c for c in child if isinstance(c, ast.ExpressionBase))
    return out


def type_mismatch(text: str, names: FieldNames) -> str | None:
    try:
        rule = rule_engine.Rule(text, rule_engine.Context(default_value=None))
    except rule_engine.errors.EngineError:
        return None

    def kind(node: Any) -> tuple[str | None, str | None]:
        """(field name or None, type name or None) of an operand."""
        if isinstance(node, ast.SymbolExpression) and node.scope is None and node.name in names.to_field:
            fname = names.to_field[node.name]
            return fname, _FIELD_TYPES.get(names.types[fname])
        for cls, tname in _LITERALS.items():
            if isinstance(node, cls):
                return None, tname
        return None, None

    def visit(node: Any) -> str | None:
        pairs: list[tuple[Any, Any, str]] = []
        if isinstance(node, ast.ComparisonExpression):
            pairs.append((node.left, node.right, node.type))
        elif isinstance(node, ast.ContainsExpression):
            pairs.append((node.container, node.member, "in"))
        for left, right, op in pairs:
            lf, lt = kind(left)
            rf, rt = kind(right)
            if lt is None or rt is None:
                continue
            if op == "in":
                if lt == "string" and rt != "string":
                    return f"{lf or rf}: 'in' a string needs a string, got a {rt} (field is a {lt})"
                if lt not in ("string", "list", "mapping"):
                    return f"{lf}: 'in' needs a string or list on its right; the field is a {lt}"
                continue
            if lt != rt:
                field = lf or rf
                ftype, other = (lt, rt) if lf else (rt, lt)
                return f"{field} is a {ftype}, compared with a {other}"
            if op in _ORDERED and lt not in ("number", "string"):
                return f"{lf or rf}: cannot order a {lt}"
        for child in _children(node):
            found = visit(child)
            if found:
                return found
        return None

    return visit(rule.statement)
