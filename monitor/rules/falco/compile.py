"""Falco-syntax conditions and exceptions through the rule engine's expansion.

parse -> lower (to ringwatch syntax, catalog names) -> Expander.expand (macros,
identifiers) -> rule-engine. Error offsets from the second stage are mapped back to
the Falco text through the lowering's marks.
"""

from __future__ import annotations

from monitor.rules.condition import Chunk, Expanded, Expander, ExpandError
from monitor.rules.falco.lower import Lowerer, LowerError, Scope, exception_condition
from monitor.rules.falco.parser import FalcoSyntaxError, parse
from monitor.rules.schema import ExceptionDef


def expand_falco(ex: Expander, text: str, stack: tuple[str, ...] = ()) -> Expanded:
    try:
        tree = parse(text)
    except FalcoSyntaxError as exc:
        raise ExpandError(exc.pos, f"condition: {exc.message}") from None
    scope = Scope(ex.bridge, ex.list_values, ex.lists, ex.macros, ex.event_types)
    try:
        low = Lowerer(scope).lower(tree)
    except LowerError as exc:
        unknown = exc.message.startswith("unknown field")
        raise ExpandError(exc.pos, exc.message, unknown_field=unknown) from None
    try:
        inner = ex.expand(low.text, stack)
    except ExpandError as exc:
        raise ExpandError(low.source_pos(exc.offset), exc.message, exc.unknown_field) from None
    chunks = [Chunk(c.out_start, c.out_len, low.source_pos(c.orig_start), 0) for c in inner.chunks]
    return Expanded(inner.engine, inner.falco, chunks)


def falco_exception_clause(ex: Expander, exc: ExceptionDef) -> tuple[str, str] | None:
    """(engine, readable) text of one Falco-syntax exception, or None when it has no values."""
    text = exception_condition(exc.fields, exc.comps, exc.values, ex.lists)
    if text is None:
        return None
    expanded = expand_falco(ex, text)
    return expanded.engine, expanded.falco


class FalcoExpander(Expander):
    """An Expander that also expands conditions written in Falco's syntax."""

    def expand(self, text: str, stack: tuple[str, ...] = (), syntax: str = "ringwatch") -> Expanded:
        if syntax == "falco":
            return expand_falco(self, text, stack)
        return super().expand(text, stack, syntax)
