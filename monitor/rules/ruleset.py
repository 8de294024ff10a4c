"""Compiled rules, indexed by event type, evaluated on flat events."""

from __future__ import annotations

import decimal
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rule_engine

from monitor.rules.alert import ALERT_FIELDS, Alert, AlertIds
from monitor.rules.candidates import Candidates
from monitor.rules.compiled import Unsupported, compile_condition, fields_read
from monitor.rules.condition import ExceptionError, Expanded, Expander, ExpandError, nesting, suggest
from monitor.rules.dnsnames import dns_names
from monitor.rules.evtypes import known_event_types
from monitor.rules.falco.bridge import MissingField, UnknownField
from monitor.rules.falco.compile import FalcoExpander, falco_exception_clause
from monitor.rules.guard import guard, read_fields_directly
from monitor.rules.index import event_types
from monitor.rules.limits import DEFAULT_LIMITS, Limits
from monitor.rules.names import FieldNames
from monitor.rules.output import OutputTemplate, TemplateError
from monitor.rules.problems import Problem
from monitor.rules.schema import Definitions, RuleDef
from monitor.rules.text import SourcedText
from monitor.rules.typecheck import type_mismatch

Event = dict[str, Any]


@dataclass(slots=True)
class RuleStats:
    matched: int = 0
    errors: int = 0  # evaluations that raised; the rule counted as not matching


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One loaded rule.

    `condition` is the macro- and list-expanded condition in Falco field names (with
    exceptions appended as `and not (...)`); parsing it again gives the same rule.
    `ast` is rule-engine's parsed expression of it; its SymbolExpression names are
    identifiers, which `RuleSet.field_of` maps back to Falco names.
    """

    name: str
    desc: str
    priority: str
    tags: tuple[str, ...]
    enabled: bool
    action: str
    condition: str
    source_condition: str
    ast: Any
    event_types: frozenset[str] | None
    output: OutputTemplate
    file: str
    line: int
    matches: Callable[[Event], bool] = field(repr=False, compare=False)
    stats: RuleStats = field(default_factory=RuleStats, compare=False)
    # rule-engine's own evaluation of the same guarded condition: what `matches` is
    # when the compiler does not handle the rule (`compiled` False), and the reference
    # the differential test holds the compiled code to.
    engine_matches: Callable[[Event], bool] | None = field(default=None, repr=False, compare=False)
    compiled: bool = field(default=False, compare=False)
    fallback_reason: str = field(default="", compare=False)
    fields: frozenset[str] = field(default=frozenset(), compare=False)  # fields the condition reads
    # The guarded, field-reading statement `matches` was compiled from (None when
    # rule-engine evaluates the rule): the index compiles it again per event type.
    statement: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SkippedRule:
    """A rule that loaded but cannot run here (Falco's behaviour for a field it lacks)."""

    name: str
    priority: str
    reason: str
    file: str
    line: int


def make_context(names: FieldNames) -> rule_engine.Context:
    to_field = names.to_field

    def resolve(thing: Event, name: str) -> Any:
        return thing.get(to_field[name])

    return rule_engine.Context(type_resolver=dict(names.engine_types), resolver=resolve, default_value=None)


class RuleSet:
    def __init__(self, rules: list[CompiledRule], names: FieldNames, files: list[str],
                 host: str | None = None, skipped: list[SkippedRule] | None = None,
                 warnings: list[Problem] | None = None) -> None:
        self.rules = rules
        self.names = names
        self.files = files
        self.skipped = skipped or []
        self.warnings = warnings or []
        self.host = host or socket.gethostname()
        self.ids = AlertIds()
        enabled = [r for r in rules if r.enabled]
        self._untyped = Candidates([r for r in enabled if r.event_types is None])
        types: set[str] = set()
        for r in enabled:
            types |= r.event_types or set()
        # Each type's list keeps definition order, untyped rules included.
        self._by_type = {
            t: Candidates([r for r in enabled if r.event_types is None or t in r.event_types], t)
            for t in types
        }
        # Per event type: the fields its rules' conditions read (fields_for).
        self._reads: dict[str, frozenset[str]] = {}

    def event_types(self) -> set[str] | None:
        """Event types some enabled rule can match; None when one needs every type."""
        if self._untyped.rules:
            return None
        return set(self._by_type)

    def rules_with_action(self, action: str) -> list[CompiledRule]:
        return [r for r in self.rules if r.enabled and r.action == action]

    def dns_names(self) -> frozenset[str]:
        """Host names enabled rules compare fd.sip.name with (monitor.events.dns resolves them)."""
        return dns_names((r.ast for r in self.rules if r.enabled and "fd.sip.name" in r.fields),
                         self.field_of)

    def field_of(self, symbol: str) -> str:
        """The Falco field name for a SymbolExpression name in a rule's AST."""
        return self.names.to_field[symbol]

    def _group(self, event: Event) -> Candidates[CompiledRule]:
        etype = event.get("evt.type")
        # A replayed file may hold anything; an unhashable type must not crash the lookup.
        return self._by_type.get(etype, self._untyped) if isinstance(etype, str) else self._untyped

    def matching(self, event: Event) -> list[CompiledRule]:
        group = self._group(event)
        group.evaluated += 1
        pairs = group.for_event(event)
        try:
            # The hot path: most events match nothing and no condition raises.
            hits = [rule for rule, matches in pairs if matches(event)]
        except Exception:
            return group.one_by_one(event, pairs)
        for rule in hits:
            rule.stats.matched += 1
        return hits

    def fields_for(self, etype: str) -> frozenset[str]:
        """The fields the conditions of the rules an event of this type is evaluated
        against read (its group's): all a lazily built event must hold before matching."""
        found = self._reads.get(etype)
        if found is None:
            group = self._by_type.get(etype, self._untyped)
            found = self._reads[etype] = frozenset({"evt.type"}).union(*(r.fields for r in group.rules))
        return found

    def alerts(self, event: Event) -> list[Alert]:
        return self.alerts_for(event, self.matching(event))

    def alerts_for(self, event: Event, hits: list[CompiledRule]) -> list[Alert]:
        """The alerts of rules that matched `event`, which must hold every field now."""
        return [
            Alert.build(
                rule=r.name, priority=r.priority, tags=list(r.tags), action=r.action,
                output=r.output.render(event),
                output_fields=r.output.values(event),
                event=event, host=self.host, ids=self.ids,
            )
            for r in hits
        ]

    def fallbacks(self) -> list[CompiledRule]:
        """Rules evaluated by rule-engine because the compiler does not handle them."""
        return [r for r in self.rules if not r.compiled]

    def referenced_fields(self) -> frozenset[str]:
        """Every event field an enabled rule's condition or output reads, plus those an
        alert always carries (process and lineage, `Alert.build`): what an event must
        provide for these rules; a lazy event may leave any other field uncomputed."""
        out: set[str] = set(ALERT_FIELDS)
        for r in self.rules:
            if r.enabled:
                out |= r.fields
                out.update(r.output.fields)
        return frozenset(out)

    def stats(self) -> dict[str, dict[str, int]]:
        evaluated = dict.fromkeys((r.name for r in self.rules), 0)
        for group in (self._untyped, *self._by_type.values()):
            for r in group.rules:
                evaluated[r.name] += group.evaluated
        return {r.name: {"evaluated": evaluated[r.name], "matched": r.stats.matched,
                         "errors": r.stats.errors} for r in self.rules}


class _OutOfTime(Exception):
    pass


class _Compiler:
    def __init__(self, defs: Definitions, names: FieldNames, limits: Limits) -> None:
        self.defs = defs
        self.names = names
        self.limits = limits
        self.event_types = known_event_types()
        self.expander: Expander = FalcoExpander(names, defs.lists, defs.macros, self.event_types, limits)
        self.context = make_context(names)
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = list(defs.warnings)
        self.skipped: list[SkippedRule] = []
        self.deadline = time.monotonic() + limits.max_compile_s

    def _in_time(self, loc: Any, label: str) -> None:
        """Stop the whole load once its time is up, naming where it got to."""
        if time.monotonic() > self.deadline:
            self.problems.append(Problem(loc, label, f"compiling the rules took more than "
                                                     f"{self.limits.max_compile_s:g} s; stopped here"))
            raise _OutOfTime

    def _too_nested(self, text: str, where: SourcedText, label: str) -> bool:
        depth = nesting(text)
        if depth > self.limits.max_nesting:
            self.problems.append(Problem(where.loc, label, f"condition: brackets nested {depth} deep "
                                                           f"(at most {self.limits.max_nesting})"))
            return True
        return False

    def _parse(self, text: str, expanded: Expanded | None, shift: int, where: SourcedText,
               label: str, extra_loc: Any = None) -> rule_engine.Rule | None:
        if self._too_nested(text, where, label):
            return None
        try:
            parsed = rule_engine.Rule(text, self.context)
            # rule-engine accepts `proc.pid == "1"` (never true): a type error here too.
            culprit = type_mismatch(text, self.names)
            if culprit is not None:
                self.problems.append(Problem(where.loc, label, f"condition: data type mismatch: {culprit}"))
                return None
            return parsed
        except RecursionError:
            self.problems.append(Problem(where.loc, label, "condition: nested too deeply to compile"))
            return None
        except rule_engine.errors.RuleSyntaxError as exc:
            token = exc.token
            loc = where.loc
            near = ""
            if token is not None:
                near = f" near {str(token.value)!r}"
                pos = token.lexpos - shift
                if expanded is not None and 0 <= pos < len(expanded.engine):
                    loc = where.locate(expanded.orig_offset(pos))
                elif extra_loc is not None:
                    loc = extra_loc
            else:
                near = " at the end of the condition"
                loc = where.locate(len(where.value))
            message = str(exc.args[0]).split(" at: ")[0]
            hint = " (use == to compare)" if "illegal character '='" in message else ""
            self.problems.append(Problem(loc, label, f"condition: {message}{near}{hint}"))
        except rule_engine.errors.RegexSyntaxError as exc:
            # The pattern and Python's reason; blamed on the pattern when it is in the text.
            at = where.value.find(str(exc.value)) if exc.value else -1
            loc = where.locate(at) if at >= 0 else where.loc
            self.problems.append(Problem(loc, label, f"condition: invalid regular expression "
                                                     f"{exc.value!r}: {exc.error}"))
        except rule_engine.errors.SymbolResolutionError as exc:
            name = self.names.to_field.get(exc.symbol_name, exc.symbol_name)
            self.problems.append(Problem(where.loc, label, f"condition: unknown name {name!r}"))
        except rule_engine.errors.EngineError as exc:
            message = getattr(exc, "message", str(exc))
            if message == "data type mismatch":
                culprit = type_mismatch(text, self.names)
                message = f"{message}: {culprit}" if culprit else message
            self.problems.append(Problem(where.loc, label, f"condition: {message}"))
        return None

    def check_macros(self) -> None:
        for name, mdef in self.defs.macros.items():
            self._in_time(mdef.loc, f"macro '{name}'")
            try:
                expanded = self.expander.macro(name)
            except MissingField:
                continue  # reported by the rules that use it
            if expanded is not None:
                self._parse(expanded.engine, expanded, 0, mdef.condition, f"macro '{name}'")

    def _falco_output_ref(self, name: str, arg: str | None, pos: int) -> Callable[[Event], Any] | None:
        """How to compute `%name[arg]` with Falco's meaning; None for a field ringwatch lacks."""
        try:
            resolved = self.expander.bridge.resolve(name, arg, pos)
        except MissingField:
            return None
        except UnknownField as exc:
            raise TemplateError(pos, f"output: {exc.message}") from None
        plain = _PLAIN_REF.fullmatch(resolved.text)
        if plain is not None:
            key, at = plain.group(1), plain.group(2)
            if at is None:
                return lambda event: event.get(key)
            n = int(at)
            return lambda event: _item(event.get(key), n)
        try:
            rule = rule_engine.Rule(self.expander.expand(resolved.text).engine, self.context)
        except (ExpandError, rule_engine.errors.EngineError) as exc:
            raise TemplateError(pos, f"output: %{name}: {exc}") from None
        return lambda event: _plain(rule.evaluate(event))

    def skip(self, rdef: RuleDef, reason: str) -> None:
        self.skipped.append(SkippedRule(rdef.name, rdef.priority, reason, rdef.loc.file, rdef.loc.line))
        self.warnings.append(Problem(rdef.loc, f"rule '{rdef.name}'", f"skipped: {reason}"))

    def _exception(self, rdef: RuleDef, exc_def: Any) -> tuple[str, str] | None:
        if rdef.syntax != "falco":
            return self.expander.exception_clause(exc_def)
        try:
            return falco_exception_clause(self.expander, exc_def)
        except ExpandError as err:
            raise ExceptionError(exc_def.loc, f"exception '{exc_def.name}': {err.message}") from None

    def rule(self, rdef: RuleDef) -> CompiledRule | None:
        label = f"rule '{rdef.name}'"
        self._in_time(rdef.loc, label)
        if rdef.source != "syscall":
            self.skip(rdef, f"source {rdef.source!r}: ringwatch only evaluates syscall rules")
            return None
        before = len(self.problems)
        try:
            expanded = self.expander.expand(rdef.condition.value, syntax=rdef.syntax)
        except MissingField as missing:
            self.skip(rdef, missing.reason)
            return None
        except ExpandError as exc:
            if exc.unknown_field and rdef.skip_if_unknown_filter:
                self.skip(rdef, f"{exc.message} (skip-if-unknown-filter)")
                return None
            self.problems.append(Problem(rdef.condition.locate(exc.offset), label, exc.message))
            return None
        engine, falco, shift = expanded.engine, expanded.falco, 0
        clauses: list[tuple[str, str]] = []
        first_exc_loc = None
        for exc_def in rdef.exceptions:
            try:
                clause = self._exception(rdef, exc_def)
            except MissingField as missing:
                self.skip(rdef, f"exception '{exc_def.name}' {missing.reason}")
                return None
            except ExceptionError as err:
                self.problems.append(Problem(err.loc, label, err.message))
                continue
            if clause is not None:
                clauses.append(clause)
                first_exc_loc = first_exc_loc or exc_def.loc
        if clauses:
            engine = f"({engine}) and not ({' or '.join(c[0] for c in clauses)})"
            falco = f"({falco}) and not ({' or '.join(c[1] for c in clauses)})"
            shift = 1
        try:
            if rdef.syntax == "falco":
                output = OutputTemplate.parse_falco(rdef.output, self._falco_output_ref)
            else:
                output = OutputTemplate.parse(rdef.output, self.names)
        except TemplateError as err:
            self.problems.append(Problem(rdef.output_loc, label, err.message))
        if len(self.problems) > before:
            return None
        plain = self._parse(engine, expanded, shift, rdef.condition, label, first_exc_loc)
        if plain is None:
            return None
        types = event_types(plain.statement, self.names.to_ident["evt.type"])
        unknown = sorted((types or frozenset()) - self.event_types)
        if unknown:
            hint = suggest(unknown[0], sorted(self.event_types))
            self.problems.append(Problem(rdef.condition.loc, label,
                                         f"condition: unknown event type {unknown[0]!r}{hint}"))
            return None
        if types is None and rdef.warn_evttypes:
            self.warnings.append(Problem(rdef.condition.loc, label,
                                         "condition does not restrict evt.type: the rule is evaluated on "
                                         "every event and the kernel records everything (warn_evttypes: "
                                         "false silences this)"))
        try:
            evaluating = rule_engine.Rule(engine, self.context)
            guard(evaluating.statement)
            read_fields_directly(evaluating.statement, self.names.to_field, self.names.types)
        except RecursionError:
            self.problems.append(Problem(rdef.condition.loc, label,
                                         "condition: nested too deeply to compile"))
            return None
        matches: Callable[[Event], bool] = evaluating.matches
        reason = ""
        statement = None
        try:
            matches = compile_condition(evaluating.statement).matches
            statement = evaluating.statement
        except Unsupported as exc:
            reason = str(exc)
        except RecursionError:
            reason = "nested too deeply for the compiler"
        return CompiledRule(
            name=rdef.name, desc=rdef.desc, priority=rdef.priority, tags=tuple(rdef.tags),
            enabled=rdef.enabled, action=rdef.action, condition=falco.strip(),
            source_condition=rdef.condition.value.strip(), ast=plain.statement.expression,
            event_types=types,
            output=output, file=rdef.loc.file, line=rdef.loc.line, matches=matches,
            engine_matches=evaluating.matches, compiled=not reason, fallback_reason=reason,
            fields=fields_read(evaluating.statement), statement=statement,
        )


_PLAIN_REF = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)(?:\[(\d+)\])?")


def _item(value: Any, n: int) -> Any:
    return value[n] if isinstance(value, (list, tuple)) and n < len(value) else None


def _plain(value: Any) -> Any:
    """rule-engine's values as JSON-ready ones (its numbers are Decimals)."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def compile_definitions(defs: Definitions, names: FieldNames,
                        host: str | None = None,
                        limits: Limits = DEFAULT_LIMITS) -> tuple[RuleSet | None, list[Problem]]:
    compiler = _Compiler(defs, names, limits)
    rules: list[CompiledRule] = []
    try:
        compiler.check_macros()
        for rdef in defs.rules.values():
            compiled = compiler.rule(rdef)
            if compiled is not None:
                rules.append(compiled)
    except _OutOfTime:
        pass  # the problem is recorded; what is left is not compiled
    problems = compiler.expander.problems + compiler.problems
    if problems:
        return None, problems
    return RuleSet(rules, names, defs.files, host, compiler.skipped, compiler.warnings), []
