"""The rules one event type is evaluated against, each compiled again for that type.

Falco indexes rules by event type; ringwatch does too (RuleSet), and then goes one step
further: within a type's group, every compiled rule is compiled again knowing evt.type
and the values of up to two boolean "facets" (the fields the group's rules test most
often against true or false, e.g. evt.is_open_read and evt.is_open_write for opens).
A test of a known field becomes a constant and and/or/not fold it away
(monitor/rules/compiled.py, `known`), so a write rule's `evt.type in (open, openat,
openat2) and evt.is_open_write = true and ...` costs nothing on a read: on an open that
matches no rule, most of the 19 default candidates fold to false and are left out.

Each specialisation is compiled when its first event comes (at most 3^2 per type: a
facet is true, false or absent). A facet holding anything else (a replayed file may
hold anything) takes the type's own specialisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from monitor.rules.compiled import Unsupported, boolean_tests, compile_condition

Event = dict[str, Any]


class _Stats(Protocol):
    matched: int
    errors: int


class Rule(Protocol):
    """What the index needs of a rule (monitor.rules.ruleset.CompiledRule)."""

    @property
    def matches(self) -> Callable[[Event], bool]: ...
    @property
    def statement(self) -> Any: ...
    @property
    def fields(self) -> frozenset[str]: ...
    @property
    def stats(self) -> _Stats: ...


R = TypeVar("R", bound=Rule)
MAX_FACETS = 2
MIN_FACET_TESTS = 2  # a field tested by one rule is not worth a key


def _always(_ev: Event) -> bool:
    return True


def _facet_code(v: Any) -> int:
    # Identity, not equality: 1 == True, and `x is True` (the compiled test) says no to 1.
    return 1 if v is True else 0 if v is False else 2 if v is None else 3


class Candidates(Generic[R]):
    """One event type's enabled rules, in definition order.

    Evaluations are counted once per event for the whole group (each rule's count is
    the sum over the groups it is in, RuleSet.stats), not once per rule and event."""

    __slots__ = ("_by_key", "_typed", "etype", "evaluated", "facets", "pairs", "rules")

    def __init__(self, rules: Sequence[R], etype: str | None = None) -> None:
        self.rules = tuple(rules)
        # Unspecialised: the untyped group, and anything a specialisation cannot take.
        self.pairs: tuple[tuple[R, Callable[[Event], bool]], ...] = tuple((r, r.matches) for r in rules)
        self.etype = etype
        self.evaluated = 0
        self.facets = _facets(self.rules) if etype is not None else ()
        self._typed: tuple[tuple[R, Callable[[Event], bool]], ...] | None = None
        self._by_key: dict[int, tuple[tuple[R, Callable[[Event], bool]], ...]] = {}

    def for_event(self, event: Event) -> tuple[tuple[R, Callable[[Event], bool]], ...]:
        """The rules to evaluate on `event` (of this group's type), specialised."""
        if self.etype is None:
            return self.pairs
        key = 0
        for f in self.facets:
            code = _facet_code(event.get(f))
            if code == 3:
                return self.typed()
            key = key * 4 + code
        found = self._by_key.get(key)
        if found is None:
            # The key's values are this event's own: each facet is True, False or None.
            known: dict[str, Any] = {"evt.type": self.etype, **{f: event.get(f) for f in self.facets}}
            found = self._by_key[key] = self._specialise(known)
        return found

    def typed(self) -> tuple[tuple[R, Callable[[Event], bool]], ...]:
        if self._typed is None:
            self._typed = self._specialise({"evt.type": self.etype})
        return self._typed

    def _specialise(self, known: dict[str, Any]) -> tuple[tuple[R, Callable[[Event], bool]], ...]:
        out: list[tuple[R, Callable[[Event], bool]]] = []
        for rule, matches in self.pairs:
            if rule.statement is None or rule.fields.isdisjoint(known):
                # Evaluated by rule-engine, or reads none of the known fields: as it is.
                out.append((rule, matches))
                continue
            try:
                cc = compile_condition(rule.statement, known)
            except (Unsupported, RecursionError):
                out.append((rule, matches))
                continue
            if cc.constant is False:
                continue  # can never match an event with these values
            out.append((rule, _always if cc.constant else cc.matches))
        return tuple(out)

    def one_by_one(self, event: Event, pairs: tuple[tuple[R, Callable[[Event], bool]], ...]) -> list[R]:
        """The slow path, when a condition raised: each rule on its own, errors counted
        (the rule then does not match), as if the fast path had never run. A rule left
        out of `pairs` is false on this event without raising (its fold said so)."""
        hits: list[R] = []
        for rule, matches in pairs:
            try:
                hit = matches(event)
            except Exception:
                rule.stats.errors += 1
                continue
            if hit:
                rule.stats.matched += 1
                hits.append(rule)
        return hits


def _facets(rules: Sequence[Rule]) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    for r in rules:
        if r.statement is not None:
            for f, n in boolean_tests(r.statement).items():
                counts[f] = counts.get(f, 0) + n
    ranked = sorted((f for f, n in counts.items() if n >= MIN_FACET_TESTS and f != "evt.type"),
                    key=lambda f: (-counts[f], f))
    return tuple(ranked[:MAX_FACETS])
