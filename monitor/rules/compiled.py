"""A rule's condition compiled to Python code, evaluating exactly as rule-engine does.

Input is the *evaluating* AST of a rule: rule-engine's parse with monitor.rules.guard's
rewrites applied (NullIsFalse boundaries, FieldValue reads, FrozenIn/Contains, the
null-false NotEqual/NotMatching). Each node becomes a Python expression; a NullIsFalse
whose inside can raise becomes a function with try/except. The generated function gives
the same value as rule-engine on every event, errors included (a rule-engine error that
would reach the caller raises here too), which tests/test_rules_compiled.py checks
against rule-engine itself.

Why it is faster: rule-engine converts every number to Decimal and every list to a tuple
on each read, type-checks on each read and walks one Python object per node. Here a field
is one dict lookup, and the common shapes are specialised on the value's class at run
time: an int is compared with an integral literal as an int (int and Decimal compare and
hash alike), a list of strings is iterated as it is (converting it would give the same
strings), `=~ "^literal"` is str.startswith. Any other class takes a slow path that does
what rule-engine does (the conversion, then rule-engine's own comparison code).

Constructs not handled raise Unsupported; the caller then evaluates that rule with
rule-engine (counted as a fallback).
"""

from __future__ import annotations

import decimal
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rule_engine import ast, errors
from rule_engine.ast.base import _assert_is_integer_number
from rule_engine.builtins import Builtins
from rule_engine.types import DataType, coerce_value

from monitor.rules.guard import (
    NULL_ERRORS,
    FieldValue,
    NotEqual,
    NullIsFalse,
    _attr_names,
    _to_number,
    _to_tuple,
)

Event = dict[str, Any]

_NONE_TYPE = type(None)
_REGEX_META = frozenset(".^$*+?{}[]|()\\")


class Unsupported(Exception):
    """A construct this compiler does not translate; the rule stays with rule-engine."""


# --- run-time helpers: each does what the named rule-engine node does -------------------

def field_number(value: Any) -> Any:
    """FieldValue of a number field."""
    return value if value is None else _to_number(value)


def field_list(value: Any) -> Any:
    """FieldValue of a list field."""
    return value if value is None else coerce_value(value, verify_type=False)


def list_of_strings(value: Any) -> bool:
    # Such a list converts to a tuple of the same strings: it can be iterated as it is.
    return value.__class__ is list and all(v.__class__ is str for v in value)


def equal(left: Any, right: Any) -> Any:
    """ComparisonExpression._op_eq on evaluated operands."""
    if type(left) is not type(right):
        return False
    return operator.eq(left, right)


def not_equal_null(left: Any, right: Any) -> Any:
    """ComparisonExpression._op_ne (only `x != null` is left to it by the guard)."""
    if type(left) is not type(right):
        return True
    return operator.ne(left, right)


def not_equal(left: Any, right: Any) -> bool:
    """guard.NotEqual on evaluated operands (right is evaluated only when left is not null;
    callers pass it evaluated only in that case)."""
    if left is None or right is None:
        return False
    return type(left) is not type(right) or bool(left != right)


def frozen_in(member: Any, values: frozenset[Any]) -> bool:
    """guard.FrozenIn on an evaluated member."""
    try:
        return member in values
    except TypeError:
        return False


def contains(container: Any, member: Any) -> bool:
    """guard.Contains on evaluated operands."""
    if container is None:
        return False
    if isinstance(container, str) and not isinstance(member, str):
        return False
    try:
        return member in container
    except TypeError:
        return False


def regex_other(left: Any) -> bool:
    """FuzzyComparisonExpression (=~, =~~) when left is not a string: null is no match,
    anything else is rule-engine's type error."""
    if left is None:
        return False
    raise errors.EvaluationError("data type mismatch")


def check_iterable(value: Any) -> Any:
    """ComprehensionExpression's check on its evaluated iterable."""
    if not DataType.from_value(value).is_iterable:
        raise errors.EvaluationError("data type mismatch (comprehension requires an iterable)")
    return value


def get_item(container: Any, item: Any, safe: bool) -> Any:
    """GetItemExpression.evaluate on evaluated operands."""
    if container is None:
        if safe:
            return None
        raise errors.EvaluationError("data type mismatch (container is null)")
    if isinstance(container, (bytes, str, tuple)):
        _assert_is_integer_number(item)
        item = int(item)
    try:
        value = operator.getitem(container, item)
    except (IndexError, KeyError):
        if safe:
            return None
        raise errors.LookupError(container, item) from None
    return coerce_value(value, verify_type=False)


def get_slice(container: Any, start: Any, stop: Any, safe: bool) -> Any:
    """GetSliceExpression.evaluate on evaluated operands."""
    if container is None:
        if safe:
            return None
        raise errors.EvaluationError("data type mismatch")
    if start is not None:
        _assert_is_integer_number(start)
        start = int(start)
    if stop is not None:
        _assert_is_integer_number(stop)
        stop = int(stop)
    return coerce_value(operator.getitem(container, slice(start, stop)), verify_type=False)


def get_attribute(node: Any) -> Callable[[Any, Event], Any]:
    """GetAttributeExpression.evaluate from its evaluated object on (`obj.name`,
    `obj&.name`), step for step: rule-engine's attribute resolver (`as_lower` of a string,
    `length` of a string, list or mapping, ... and its errors for any other class), then
    its fallback of a mapping's key read through the context's resolver. Not for an
    OBJECT-typed object (the compiler leaves those to rule-engine)."""
    context, name, safe = node.context, node.name, node.safe
    nullable = DataType.is_type(node.object.result_type, DataType.NULLABLE)
    new_value = node._new_value

    def attribute(obj: Any, ev: Event) -> Any:
        if obj is None and safe:
            return None
        if obj is None and nullable:
            raise errors.EvaluationError(
                "attribute access on a null value (use ?. to safely navigate a NULLABLE expression)")
        try:
            value = context.resolve_attribute(ev, obj, name)
        except errors.AttributeResolutionError as error:
            attribute_error = error
        else:
            return new_value(value, verify_type=False)
        if isinstance(obj, Mapping) and not isinstance(obj, Builtins):
            if not context.mapping_attribute_lookup:
                raise attribute_error
            context._warn_mapping_fallback(name)
        try:
            value = context.resolve(obj, name)
        except errors.SymbolResolutionError:
            if context.default_value is errors.UNDEFINED:
                raise attribute_error from None
            value = context.default_value
        return new_value(value, verify_type=False)

    return attribute


def _ordered(node: Any, safe: bool) -> Callable[[Any, Any], Any]:
    """rule-engine's own ordered comparison of two evaluated values, under the rule's
    decimal context (as Rule.evaluate sets it): a NaN raises exactly as it does there.
    safe: null errors are False (for a comparison directly under NullIsFalse)."""
    op = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}[node.type]
    values = node._ArithmeticComparisonExpression__op_arithmetic_values
    context = node.context.decimal_context

    def compare(left: Any, right: Any) -> Any:
        with decimal.localcontext(context):
            return values(op, left, right)

    def compare_safe(left: Any, right: Any) -> Any:
        try:
            with decimal.localcontext(context):
                return values(op, left, right)
        except NULL_ERRORS:
            return False

    return compare_safe if safe else compare


def _is_int_literal(value: Any) -> bool:
    return (isinstance(value, decimal.Decimal) and value.is_finite()
            and value == value.to_integral_value())


def _literal_alternatives(pattern: str) -> tuple[str, ...] | None:
    """("a", "b") for `^(?:a|b)` or `^a` whose alternatives are literal text (what
    `startswith` writes), else None: then a match is str.startswith."""
    if not pattern.startswith("^"):
        return None
    body = pattern[1:]
    if body.startswith("(?:") and body.endswith(")"):
        body = body[3:-1]
        split = True
    else:
        split = False
        if body.endswith(".*"):
            body = body[:-2]
    alternatives: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body) or body[i + 1].isalnum():
                return None
            out.append(body[i + 1])
            i += 2
            continue
        if ch == "|" and split:
            alternatives.append("".join(out))
            out = []
        elif ch in _REGEX_META:
            return None
        else:
            out.append(ch)
        i += 1
    alternatives.append("".join(out))
    return tuple(alternatives)


# --- code generation ---------------------------------------------------------------------

@dataclass(slots=True)
class Code:
    """One node's Python expression.

    `raises`: evaluating it may raise (then a NullIsFalse above needs try/except).
    `field`/`kind`: set for a FieldValue: the event key and "number", "list" or "plain";
    `expr` is then the value as rule-engine sees it, and consumers may read the raw
    `ev.get(key)` instead when they handle every class the raw value can have.
    `iter_expr`: the value as a comprehension iterates it (type-checked as rule-engine's
    comprehension does), where that can skip a conversion: a list of strings as it is.
    """

    expr: str
    raises: bool
    field: str | None = None
    kind: str = ""
    iter_expr: str | None = None
    # Its truth, when the generator's known fields decide it (and evaluating it could
    # not raise): logic above folds it away.
    const: bool | None = None


def _constant(value: bool) -> Code:
    return Code("True" if value else "False", False, const=value)


@dataclass
class _Generator:
    # Fields whose value is known for every event the code will see (the rule set's
    # index specialises a rule per event type and boolean facets): a test of one of
    # them becomes a constant, and and/or/not fold it, as rule-engine's short-circuit
    # would have gone on each of those events.
    known: Mapping[str, Any] = field(default_factory=dict)
    consts: dict[str, Any] = field(default_factory=dict)
    defs: list[str] = field(default_factory=list)
    scope: list[str] = field(default_factory=list)  # comprehension variables, innermost last
    counter: int = 0

    def const(self, value: Any) -> str:
        for name, v in self.consts.items():
            if v is value:
                return name
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def temp(self) -> str:
        self.counter += 1
        return f"_t{self.counter}"

    def new_def(self, body: list[str]) -> str:
        name = f"_f{len(self.defs)}"
        self.defs.append(f"def {name}(ev):\n" + "".join(f"    {line}\n" for line in body))
        return name

    # nodes -----------------------------------------------------------------------------
    def gen(self, node: Any) -> Code:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise Unsupported(type(node).__name__)
        code: Code = method(node)
        return code

    def raw(self, code: Code) -> str:
        assert code.field is not None
        return f"ev.get({self.const(code.field)})"

    def truth(self, node: Any) -> Code:
        """The node's expression where only its truth is used (an operand of and, or,
        not; a condition): nested logic then needs no bool() per level. rule-engine's
        and/or/not take their operands' Python truth, which is the same with or without
        the bool() around an inner and/or."""
        node_type = type(node)
        if node_type is ast.LogicExpression and node.type in ("and", "or"):
            left, right = self.truth(node.left), self.truth(node.right)
            return _fold(node.type, left, right)
        if node_type is ast.UnaryExpression and node.type == "not":
            right = self.truth(node.right)
            if right.const is not None:
                return _constant(not right.const)
            return Code(f"(not {right.expr})", right.raises)
        if node_type is NullIsFalse:
            return self._NullIsFalse(node, truth=True)
        return self.gen(node)

    def _NullIsFalse(self, node: Any, truth: bool = False) -> Code:  # named for the node class
        # An ordered comparison or regex match directly inside may turn its own null
        # errors into False (what this node would do with them), saving a try/except.
        inner_type = type(node.inner)
        if inner_type is ast.FuzzyComparisonExpression:
            inner = self._fuzzy(node.inner, safe=True)
        elif inner_type is ast.ArithmeticComparisonExpression:
            inner = self._ordered(node.inner, safe=True)
        elif truth:
            inner = self.truth(node.inner)
        else:
            inner = self.gen(node.inner)
        if not inner.raises:
            return Code(inner.expr, False, inner.field, inner.kind, inner.iter_expr, inner.const)
        if self.scope:
            raise Unsupported("NullIsFalse inside a comprehension")
        errs = self.const(NULL_ERRORS)
        name = self.new_def(["try:", f"    return {inner.expr}", f"except {errs}:", "    return False"])
        return Code(f"{name}(ev)", False)

    def _LogicExpression(self, node: Any) -> Code:
        if node.type not in ("and", "or"):
            raise Unsupported(f"logic {node.type}")
        code = self.truth(node)  # used as a value: rule-engine's and/or give a bool
        if code.const is not None:
            return code
        return Code(f"bool{code.expr}", code.raises)

    def _UnaryExpression(self, node: Any) -> Code:
        if node.type != "not":
            raise Unsupported(f"unary {node.type}")
        return self.truth(node)

    def _literal(self, node: Any) -> Code:
        return Code(self.const(node.evaluate(None)), False)

    _StringExpression = _literal
    _FloatExpression = _literal
    _BooleanExpression = _literal
    _NullExpression = _literal

    def _ArrayExpression(self, node: Any) -> Code:
        if node.is_reduced:
            return self._literal(node)
        members = [self.gen(m) for m in node.value]
        inside = "".join(m.expr + ", " for m in members)
        return Code(f"({inside})", any(m.raises for m in members))

    def _FieldValue(self, node: Any) -> Code:
        key = self.const(node.key)
        if node.convert is None:
            return Code(f"ev.get({key})", False, node.key, "plain")
        if node.convert is _to_number:
            return Code(f"{self.const(field_number)}(ev.get({key}))", False, node.key, "number")
        if node.convert is _to_tuple:
            return Code(f"{self.const(field_list)}(ev.get({key}))", False, node.key, "list")
        raise Unsupported("FieldValue conversion")

    def _SymbolExpression(self, node: Any) -> Code:
        # Only comprehension variables remain symbols (fields are FieldValue): their
        # values are members of an already converted iterable, returned as they are when
        # the symbol's type is undefined (a field list's members have no declared type).
        if node.scope is not None or node.name not in self.scope:
            raise Unsupported(f"symbol {node.name!r}")
        if node.result_type != DataType.UNDEFINED:
            raise Unsupported(f"typed comprehension variable {node.name!r}")
        return Code(f"v_{node.name}", False)

    def _CoalesceExpression(self, node: Any) -> Code:
        left, right = self.gen(node.left), self.gen(node.right)
        t = self.temp()
        return Code(f"({t} if ({t} := {left.expr}) is not None else {right.expr})",
                    left.raises or right.raises)

    def _ComparisonExpression(self, node: Any) -> Code:
        if type(node) is ast.FuzzyComparisonExpression:
            return self._fuzzy(node)
        if type(node) is ast.ArithmeticComparisonExpression:
            return self._ordered(node)
        if type(node) is not ast.ComparisonExpression:
            raise Unsupported(type(node).__name__)
        left, right = self.gen(node.left), self.gen(node.right)
        if node.type == "ne":
            ne = self.const(not_equal_null)
            return Code(f"{ne}({left.expr}, {right.expr})", left.raises or right.raises)
        for a, b, lit_node in ((left, right, node.right), (right, left, node.left)):
            if isinstance(lit_node, ast.LiteralExpressionBase) and lit_node.is_reduced and not a.raises:
                return self._equal_literal(a, b, lit_node.evaluate(None))
        return Code(f"{self.const(equal)}({left.expr}, {right.expr})", left.raises or right.raises)

    _ArithmeticComparisonExpression = _ComparisonExpression
    _FuzzyComparisonExpression = _ComparisonExpression

    def _known(self, code: Code) -> tuple[bool, Any]:
        """Whether `code` reads a known field as it is (no conversion), and its value."""
        if code.field is not None and code.kind == "plain" and code.field in self.known:
            return True, self.known[code.field]
        return False, None

    def _equal_literal(self, x: Code, lit: Code, value: Any) -> Code:
        known, v = self._known(x)
        if known and (value is None or isinstance(value, bool)):
            return _constant(v is value)
        if known and isinstance(value, str):
            return _constant(v.__class__ is str and v == value)
        t = self.temp()
        if value is None or isinstance(value, bool):
            return Code(f"({x.expr} is {lit.expr})", False)  # one object per value
        if isinstance(value, str):
            return Code(f"(({t} := {x.expr}).__class__ is str and {t} == {lit.expr})", False)
        if x.kind == "number" and _is_int_literal(value):
            slow = f"{self.const(equal)}({self.const(field_number)}({t}), {lit.expr})"
            return Code(f"({t} == {int(value)} if ({t} := {self.raw(x)}).__class__ is int "
                        f"else {slow})", False)
        return Code(f"{self.const(equal)}({x.expr}, {lit.expr})", False)

    def _ordered(self, node: Any, safe: bool = False) -> Code:
        left, right = self.gen(node.left), self.gen(node.right)
        safe = safe and not (left.raises or right.raises)
        compare = self.const(_ordered(node, safe))
        symbol = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}[node.type]
        lit = node.right
        if left.kind == "number" and isinstance(lit, ast.FloatExpression) and _is_int_literal(lit.value):
            t = self.temp()
            slow = f"{compare}({self.const(field_number)}({t}), {right.expr})"
            return Code(f"({t} {symbol} {int(lit.value)} if ({t} := {self.raw(left)}).__class__ is int "
                        f"else {slow})", not safe)
        return Code(f"{compare}({left.expr}, {right.expr})", not safe)

    def _fuzzy(self, node: Any, safe: bool = False) -> Code:
        if not isinstance(node.right, ast.StringExpression):
            raise Unsupported("regex that is not a literal")
        if node.type not in ("eq_fzm", "eq_fzs"):
            raise Unsupported(f"regex operator {node.type}")  # the guard makes !~ NotMatching
        left = self.gen(node.left)
        pattern: re.Pattern[str] = node._right
        t = self.temp()
        test = self._regex_test(pattern, node.type == "eq_fzs", t)
        if safe and not left.raises:  # a non-string's type error would become False
            return Code(f"(({t} := {left.expr}).__class__ is str and {test})", False)
        other = self.const(regex_other)
        return Code(f"({test} if ({t} := {left.expr}).__class__ is str else {other}({t}))", True)

    def _regex_test(self, pattern: re.Pattern[str], search: bool, t: str) -> str:
        text = pattern.pattern
        if pattern.flags == re.UNICODE:  # no flags beyond str's default
            if not search:
                alternatives = _literal_alternatives(text)
                if alternatives is not None:
                    arg = self.const(alternatives[0] if len(alternatives) == 1 else alternatives)
                    return f"{t}.startswith({arg})"
            elif text and not any(ch in _REGEX_META for ch in text):
                return f"({self.const(text)} in {t})"
        return f"({self.const(pattern.search if search else pattern.match)}({t}) is not None)"

    def _NotMatching(self, node: Any) -> Code:
        left = self.gen(node.left)
        t = self.temp()
        test = self._regex_test(node.pattern, node.search, t)
        return Code(f"(({t} := {left.expr}).__class__ is str and not {test})", left.raises)

    def _NotEqual(self, node: Any) -> Code:
        left, right = self.gen(node.left), self.gen(node.right)
        t = self.temp()
        if isinstance(node.right, ast.LiteralExpressionBase) and node.right.is_reduced and not left.raises:
            value = node.right.evaluate(None)
            known, v = self._known(left)
            if known and isinstance(value, bool):
                return _constant(v is not None and v is not value)
            if known and isinstance(value, str):
                return _constant(v is not None and (v.__class__ is not str or v != value))
            if isinstance(value, bool):
                return Code(f"(({t} := {left.expr}) is not None and {t} is not {right.expr})", False)
            if isinstance(value, str):
                return Code(f"(({t} := {left.expr}) is not None and ({t}.__class__ is not str "
                            f"or {t} != {right.expr}))", False)
            if left.kind == "number" and _is_int_literal(value):
                slow = f"{self.const(not_equal)}({self.const(field_number)}({t}), {right.expr})"
                return Code(f"({t} != {int(value)} if ({t} := {self.raw(left)}).__class__ is int "
                            f"else {slow})", False)
        # right is evaluated only when left is not null, as NotEqual does
        return Code(f"(({t} := {left.expr}) is not None and {self.const(not_equal)}({t}, {right.expr}))",
                    left.raises or right.raises)

    def _FrozenIn(self, node: Any) -> Code:
        member = self.gen(node.member)
        known, v = self._known(member)
        if known and (v is None or v.__class__ in (str, bool)):
            return _constant(v in node.values)  # FrozenIn.evaluate on the raw value
        values = self.const(node.values)
        t = self.temp()
        slow = self.const(frozen_in)
        if member.field is not None:
            # A raw str, int, bool or None tests as its converted value would (an int
            # and its Decimal are equal and hash alike); other classes take the slow path.
            fast = self.const(frozenset({str, int, bool, _NONE_TYPE}))
            convert = {"number": field_number, "list": field_list}.get(member.kind)
            conv = f"{self.const(convert)}({t})" if convert else t
            return Code(f"({t} in {values} if ({t} := {self.raw(member)}).__class__ in {fast} "
                        f"else {slow}({conv}, {values}))", False)
        return Code(f"({t} in {values} if ({t} := {member.expr}).__class__ is str "
                    f"else {slow}({t}, {values}))", member.raises)

    def _Contains(self, node: Any) -> Code:
        container = self.gen(node.container)
        member = self.gen(node.member)
        t = self.temp()
        if (container.field is not None and isinstance(node.member, ast.StringExpression)):
            # A string member is found in a raw list, str or dict exactly when it is in
            # the converted value (conversion keeps strings as they are); any other
            # class (a number, a bool, null) contains no string.
            kinds = self.const(frozenset({list, str, dict, tuple}))
            return Code(f"(({t} := {self.raw(container)}).__class__ in {kinds} "
                        f"and {member.expr} in {t})", False)
        return Code(f"{self.const(contains)}({container.expr}, {member.expr})",
                    container.raises or member.raises)

    def _TernaryExpression(self, node: Any) -> Code:
        # rule-engine: `case_true if condition.evaluate(thing) else case_false`, the
        # condition's value taken by Python's truth (a Decimal 0, an empty tuple are false)
        # and only the chosen case evaluated.
        cond, yes, no = self.truth(node.condition), self.gen(node.case_true), self.gen(node.case_false)
        return Code(f"({yes.expr} if {cond.expr} else {no.expr})", cond.raises or yes.raises or no.raises)

    def _GetAttributeExpression(self, node: Any) -> Code:
        if node._object_type is not None:
            raise Unsupported("attribute of an OBJECT type")
        obj = self.gen(node.object)
        slow = self.const(get_attribute(node))
        t = self.temp()
        method = {"as_lower": "lower", "as_upper": "upper"}.get(node.name)
        if method is not None:
            # A str's as_lower is str.lower (rule-engine's coercions keep a str as it is);
            # any other class (null, a number, a list) takes rule-engine's own steps.
            return Code(f"({t}.{method}() if ({t} := {obj.expr}).__class__ is str "
                        f"else {slow}({t}, ev))", True)
        return Code(f"{slow}({obj.expr}, ev)", True)

    def _GetItemExpression(self, node: Any) -> Code:
        container, item = self.gen(node.container), self.gen(node.item)
        return Code(f"{self.const(get_item)}({container.expr}, {item.expr}, {node.safe})", True)

    def _GetSliceExpression(self, node: Any) -> Code:
        container, start, stop = self.gen(node.container), self.gen(node.start), self.gen(node.stop)
        get = self.const(get_slice)
        generic = f"{get}({container.expr}, {start.expr}, {stop.expr}, {node.safe})"
        if not (isinstance(node.start, ast.FloatExpression) and isinstance(node.stop, ast.NullExpression)
                and _is_int_literal(node.start.value)):
            return Code(generic, True)
        n = int(node.start.value)
        check = self.const(check_iterable)
        t = self.temp()
        if container.kind == "list":
            slow = f"{get}({self.const(field_list)}({t}), {start.expr}, None, {node.safe})"
            strings = f"{self.const(list_of_strings)}({t} := {self.raw(container)})"
            return Code(f"(tuple({t}[{n}:]) if {strings} else {slow})", True,
                        iter_expr=f"({t}[{n}:] if {strings} else {check}({slow}))")
        listed = self._coalesced_list(node.container)
        if listed is not None:
            # `(proc.aname ?? [])[1:]`, Falco's ancestors: a null field slices the empty
            # array to (); a list of strings slices to the same strings; any other value
            # takes the generic path, which evaluates the whole expression again.
            strings = f"{self.const(list_of_strings)}({t} := {self.raw(listed)})"
            empty_or = f"() if {t} is None else"
            return Code(f"(tuple({t}[{n}:]) if {strings} else ({empty_or} {generic}))", True,
                        iter_expr=f"({t}[{n}:] if {strings} else ({empty_or} {check}({generic})))")
        return Code(generic, True)

    def _coalesced_list(self, node: Any) -> Code | None:
        """The list field of `field ?? []` (coalesced with a literal empty array), else None."""
        if not (isinstance(node, ast.CoalesceExpression) and isinstance(node.right, ast.ArrayExpression)
                and node.right.is_reduced and node.right.evaluate(None) == ()):
            return None
        left = self.gen(node.left)
        return left if left.kind == "list" else None

    def _iterable(self, node: Any) -> Code:
        """The comprehension's iterable, as a function of ev (a comprehension's iterable
        cannot hold the := temporaries the expressions use)."""
        code = self.gen(node)
        if code.kind == "list":
            t = self.temp()
            expr = (f"{t} if {self.const(list_of_strings)}({t} := {self.raw(code)}) "
                    f"else {self.const(check_iterable)}({self.const(field_list)}({t}))")
        elif code.iter_expr is not None:
            expr = code.iter_expr
        elif (isinstance(node, ast.CoalesceExpression) and isinstance(node.right, ast.ArrayExpression)
              and node.right.is_reduced):
            left = self.gen(node.left)
            empty = self.const(node.right.evaluate(None))
            t = self.temp()
            if left.kind == "list":
                # the raw value is read once into t, and converted only when needed
                expr = (f"{empty} if ({t} := {self.raw(left)}) is None "
                        f"else ({t} if {self.const(list_of_strings)}({t}) else "
                        f"{self.const(check_iterable)}({self.const(field_list)}({t})))")
            else:
                expr = f"{empty} if ({t} := {left.expr}) is None else {self.const(check_iterable)}({t})"
        else:
            expr = f"{self.const(check_iterable)}({code.expr})"
        if self.scope:
            raise Unsupported("nested comprehension")
        name = self.new_def([f"return {expr}"])
        return Code(f"{name}(ev)", True)

    def _ComprehensionExpression(self, node: Any) -> Code:
        iterable = self._iterable(node.iterable)
        var = f"v_{node.variable}"
        self.scope.append(node.variable)
        try:
            result = self.gen(node.result)
            condition = self.truth(node.condition) if node.condition is not None else None
        finally:
            self.scope.pop()
        cond = f" if {condition.expr}" if condition is not None else ""
        raises = True  # the iterable's type check
        return Code(f"tuple([{result.expr} for {var} in {iterable.expr}{cond}])", raises)


def children(node: Any) -> Iterator[Any]:
    """A rule-engine node's operands (expressions and statements), one level down."""
    for name in _attr_names(node):
        child = getattr(node, name, None)
        if isinstance(child, (ast.ExpressionBase, ast.Statement)):
            yield child
        elif isinstance(child, (tuple, list)):
            yield from (c for c in child if isinstance(c, ast.ExpressionBase))


def fields_read(node: Any) -> frozenset[str]:
    """The event keys a guarded, field-reading AST reads (its FieldValue nodes)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, FieldValue):
            out.add(n.key)
            continue
        stack.extend(children(n))
    return frozenset(out)


def boolean_tests(node: Any) -> dict[str, int]:
    """How often each field is compared with true or false (`==`, `!=`) outside any
    `not` in a guarded, field-reading AST: the fields whose value can make the whole
    condition false, worth specialising a rule on. (Tests inside a `not`, as in
    exceptions, rarely can.)"""
    out: dict[str, int] = {}
    stack = [node]
    while stack:
        n = stack.pop()
        if type(n) in (ast.ComparisonExpression, NotEqual) and isinstance(n.left, FieldValue) \
                and n.left.convert is None and isinstance(n.right, ast.BooleanExpression):
            out[n.left.key] = out.get(n.left.key, 0) + 1
        if type(n) is not ast.UnaryExpression or n.type != "not":
            stack.extend(children(n))
    return out


def _fold(op: str, left: Code, right: Code) -> Code:
    """`left and right` / `left or right` where only the truth is used, folding constants
    as Python's short-circuit would evaluate them (a side that may raise is kept)."""
    absorbing = op == "or"  # True absorbs or, False absorbs and
    if left.const is not None:
        return _constant(absorbing) if left.const is absorbing else right
    if right.const is not None:
        if right.const is not absorbing:
            return left
        if not left.raises:
            return _constant(absorbing)
    return Code(f"({left.expr} {op} {right.expr})", left.raises or right.raises)


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    matches: Callable[[Event], bool]
    source: str  # the generated Python, for debugging and the tests
    constant: bool | None = None  # the known fields decide it: always this


def compile_condition(statement: Any, known: Mapping[str, Any] | None = None) -> CompiledCondition:
    """statement: a guarded, field-reading rule-engine Statement. Raises Unsupported.
    `known`: field values every event given to it has (see _Generator.known)."""
    if not isinstance(statement, ast.Statement):
        raise Unsupported("not a statement")
    gen = _Generator(known=dict(known or {}))
    code = gen.truth(statement.expression)
    body = f"def matches(ev):\n    return bool({code.expr})\n"
    source = "\n".join([*gen.defs, body])
    namespace: dict[str, Any] = dict(gen.consts)
    exec(compile(source, "<ringwatch rule>", "exec"), namespace)  # our own generated code
    return CompiledCondition(namespace["matches"], source, code.const)

