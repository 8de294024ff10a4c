"""Turns a Falco-style condition into a rule-engine expression.

Steps, on tokens (string literals and comments are never touched):
- a catalog field name becomes its identifier (`proc.name` -> `proc__name`); a dotted
  name under a field namespace that is not in the catalog is an unknown-field error;
- a macro name becomes `(its expanded condition)`, a list name becomes an array literal;
- `X startswith "p"` becomes `X =~ "^p"` (regex-escaped), `X endswith "s"` becomes
  `X =~ ".*s$"`: rule-engine's `=~` is an anchored match, so a prefix test is always an
  `=~` whose pattern starts with `^` and literal text (see `literal_prefix`);
  `X startswith my_list` matches any item: `X =~ "^(?:a|b)"`, one compiled pattern;
- any other bare name must be a comprehension variable or a rule-engine keyword.
Every replacement is recorded so a rule-engine error offset maps back to the file.
"""

from __future__ import annotations

import codecs
import difflib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from monitor.rules.falco.bridge import Bridge, MissingField
from monitor.rules.limits import DEFAULT_LIMITS, LimitError, Limits
from monitor.rules.names import FieldNames
from monitor.rules.problems import Loc, Problem
from monitor.rules.schema import ExceptionDef, ListDef, MacroDef

KEYWORDS = frozenset({"and", "or", "not", "in", "for", "if", "true", "false", "null", "inf", "nan"})
FALCO_OPERATORS = frozenset({"startswith", "endswith"})
# Falco operators that have no direct spelling here: say what to write instead.
FALCO_HINTS = {
    "contains": 'write `"text" in field` (substring, or list member) or `field =~~ "regex"`',
    "icontains": 'write `field.as_lower =~~ "text"`',
    "bcontains": 'write `"text" in field`',
    "exists": "write `field != null`",
    "glob": "write a regex match with `=~`",
    "pmatch": 'write `field startswith "/dir/"` or `=~`',
    "intersects": "write a comprehension: `[x for x in field if x in my_list]`",
}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<str>[rsbdt]?(?P<q>["'])(?:[^\\\n]|\\.)*?(?P=q))
  | (?P<num>0(?:b[01]+|o[0-7]+|x[0-9a-fA-F]+)|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>&\.|&\[|\S)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    return [Token(m.lastgroup or "op", m.group(), m.start()) for m in _TOKEN.finditer(text)
            if m.lastgroup != "q"]


def nesting(text: str) -> int:
    """The deepest bracket nesting of a condition (string literals and comments skipped)."""
    depth = deepest = 0
    for tok in tokenize(text):
        if tok.kind == "op":
            if tok.text in ("(", "[", "&["):
                depth += 1
                deepest = max(deepest, depth)
            elif tok.text in (")", "]"):
                depth -= 1
    return deepest


def quote(value: str) -> str:
    """A rule-engine string literal for value (it decodes literals with unicode-escape)."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    out = out.replace("\r", "\\r")
    return f'"{out}"'


def unquote(literal: str) -> str:
    """The value of a rule-engine string literal, decoded as rule-engine decodes it."""
    raw = literal[0] == "r"
    if literal[0] in "rs":
        literal = literal[1:]
    body = literal[1:-1]
    if raw:
        return body
    body = codecs.encode(body, "unicode-escape").decode().replace("\\\\", "\\")
    return codecs.decode(body, "unicode-escape")


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return quote(str(value))


_REGEX_META = re.compile(r"\\(.)|[.^$*+?{}\[\]|()]")


def literal_prefix(pattern: str) -> str | None:
    """The literal text a `=~` pattern requires at the start, if it is only that.

    `^/tmp/` -> "/tmp/", `^/tmp/.*` -> "/tmp/"; anything with other regex syntax -> None.
    For the enforcement compiler, which can only turn plain prefixes into kernel maps.
    """
    if not pattern.startswith("^"):
        return None
    body = pattern[1:]
    if body.endswith(".*"):
        body = body[:-2]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body) or body[i + 1].isalnum():
                return None  # \d, \s, ...: a class, not a literal
            out.append(body[i + 1])
            i += 2
            continue
        if ch in ".^$*+?{}[]|()":
            return None
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Chunk:
    out_start: int
    out_len: int
    orig_start: int
    orig_len: int


@dataclass(slots=True)
class Expanded:
    engine: str
    falco: str
    chunks: list[Chunk] = field(default_factory=list)

    def orig_offset(self, out_pos: int) -> int:
        best = Chunk(0, 0, 0, 0)
        for c in self.chunks:
            if c.out_start <= out_pos:
                best = c
        inside = out_pos - best.out_start
        return best.orig_start + (inside if best.out_len == best.orig_len else 0)


class ExpandError(Exception):
    def __init__(self, offset: int, message: str, unknown_field: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message
        self.unknown_field = unknown_field  # Falco's skip-if-unknown-filter skips these


def suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Expander:
    """Expands conditions against one set of lists and macros; macro results are cached.

    Each macro is expanded in its own file's syntax; this class knows ringwatch's, and
    monitor.rules.falco.compile.FalcoExpander adds Falco's (parsed and lowered to this
    syntax first). A field Falco has and ringwatch lacks raises MissingField, which
    skips the rule that needs it instead of failing the load. Expansion is bounded
    (monitor.rules.limits): a macro or list bomb is an error naming it, not a hang.
    """

    def __init__(self, names: FieldNames, lists: dict[str, ListDef], macros: dict[str, MacroDef],
                 event_types: frozenset[str] = frozenset(), limits: Limits = DEFAULT_LIMITS) -> None:
        self.names = names
        self.lists = lists
        self.macros = macros
        self.event_types = event_types
        self.bridge = Bridge.create(names)
        self.limits = limits
        self.problems: list[Problem] = []
        self._macro_done: dict[str, Expanded | None] = {}
        self._macro_missing: dict[str, MissingField] = {}
        self._list_done: dict[str, str] = {}
        self._values_done: dict[str, list[Any]] = {}
        self.total_chars = 0  # of every expansion so far, against limits.max_total_chars

    # lists -------------------------------------------------------------------------
    def list_values(self, name: str, stack: tuple[str, ...] = ()) -> list[Any]:
        """A list's items, with items that name another list replaced by its items (Falco).

        Cached, and bounded: lists that include each other twice over double at each level.
        """
        done = self._values_done.get(name)
        if done is not None:
            return done
        out: list[Any] = []
        for item in self.lists[name].items:
            if isinstance(item, str) and item in self.lists and item != name and item not in stack:
                out.extend(self.list_values(item, (*stack, name)))
            else:
                out.append(item)
            if len(out) > self.limits.max_list_items:
                raise LimitError(f"list '{name}' has more than {self.limits.max_list_items} items "
                                 "once the lists inside it are expanded")
        if not stack:
            self._values_done[name] = out
        return out

    def list_text(self, name: str) -> str:
        if name not in self._list_done:
            text = "[" + ", ".join(literal(v) for v in self.list_values(name)) + "]"
            if len(text) > self.limits.max_expanded_chars:
                raise LimitError(f"list '{name}' is longer than {self.limits.max_expanded_chars} "
                                 "characters once expanded")
            self._list_done[name] = text
        return self._list_done[name]

    # macros ------------------------------------------------------------------------
    def macro(self, name: str, stack: tuple[str, ...] = ()) -> Expanded | None:
        """The expansion of a macro, or None if it has errors (recorded once, at the macro)."""
        if name in self._macro_missing:
            raise self._macro_missing[name].through(name)
        if name in self._macro_done:
            return self._macro_done[name]
        mdef = self.macros[name]
        label = f"macro '{name}'"
        try:
            if len(stack) >= self.limits.max_macro_depth:
                raise ExpandError(0, f"macros nested more than {self.limits.max_macro_depth} deep: "
                                     f"{' -> '.join([*stack[:3], '...', *stack[-2:], name])}")
            result: Expanded | None = self.expand(mdef.condition.value, (*stack, name), mdef.syntax)
        except MissingField as missing:
            # Not an error: each rule that uses the macro is skipped, naming the field.
            self._macro_missing[name] = missing
            raise missing.through(name) from None
        except ExpandError as exc:
            self.problems.append(Problem(mdef.condition.locate(exc.offset), label, exc.message))
            result = None
        self._macro_done[name] = result
        return result

    def macro_missing(self, name: str) -> MissingField | None:
        return self._macro_missing.get(name)

    # conditions --------------------------------------------------------------------
    def expand(self, text: str, stack: tuple[str, ...] = (), syntax: str = "ringwatch") -> Expanded:
        if syntax != "ringwatch":
            # monitor.rules.falco.compile.FalcoExpander overrides this for Falco's syntax.
            raise ExpandError(0, f"conditions in {syntax!r} syntax are not supported here")
        tokens = tokenize(text)
        significant = [t for t in tokens if t.kind not in ("ws", "comment")]
        # Comprehension variables (`[a for a in proc.argv]`) are used before `for` names them.
        declared = {b.text for a, b in itertools.pairwise(significant)
                    if a.text == "for" and b.kind == "name"}
        eng: list[str] = []
        fal: list[str] = []
        chunks: list[Chunk] = []
        out_len = 0
        prev: Token | None = None  # previous significant token
        i = 0

        limits = self.limits

        def emit(engine: str, falco: str, tok: Token, orig_len: int | None = None) -> None:
            nonlocal out_len
            span = len(tok.text) if orig_len is None else orig_len
            chunks.append(Chunk(out_len, len(engine), tok.pos, span))
            eng.append(engine)
            fal.append(falco)
            out_len += len(engine)
            # Checked as it grows, so a macro bomb stops at the bound, not after it.
            if out_len > limits.max_expanded_chars:
                raise ExpandError(tok.pos, f"expands to more than {limits.max_expanded_chars} characters "
                                           f"(at {tok.text[:40]!r}: macros or lists used many times over?)")
            if self.total_chars + out_len > limits.max_total_chars:
                raise ExpandError(tok.pos, f"all conditions together expand to more than "
                                           f"{limits.max_total_chars} characters")

        while i < len(tokens):
            tok = tokens[i]
            i += 1
            if tok.kind in ("ws", "comment"):
                blank = " " if tok.kind == "comment" else tok.text
                emit(blank, blank, tok)
                continue
            after_dot = prev is not None and prev.kind == "op" and prev.text in (".", "&.")
            before, prev = prev, tok
            if tok.kind != "name" or after_dot or tok.text.startswith("$"):
                emit(tok.text, tok.text, tok)
                continue
            name = tok.text
            if name in FALCO_OPERATORS:
                j = i
                while j < len(tokens) and tokens[j].kind == "ws":
                    j += 1
                if j < len(tokens) and tokens[j].kind == "str":
                    value = re.escape(unquote(tokens[j].text))
                elif j < len(tokens) and tokens[j].kind == "name" and tokens[j].text in self.lists:
                    # `x startswith my_list`: any of the list's items, as one compiled pattern.
                    items = self._bounded(self.list_values, tokens[j])
                    if not items or not all(isinstance(v, str) for v in items):
                        raise ExpandError(tokens[j].pos, f"{name} {tokens[j].text}: the list must hold "
                                                         "strings, at least one")
                    value = "(?:" + "|".join(re.escape(v) for v in items) + ")"
                else:
                    raise ExpandError(tok.pos, f"{name} needs a string literal or a list name on its right")
                pattern = "^" + value if name == "startswith" else ".*" + value + "$"
                text_out = "=~ " + quote(pattern)
                emit(text_out, text_out, tok, tokens[j].pos + len(tokens[j].text) - tok.pos)
                prev = tokens[j]
                i = j + 1
                continue
            if name in KEYWORDS or name in declared:
                emit(name, name, tok)
                continue
            found = self.names.longest_field(name)
            if found is not None:
                fname, rest = found
                emit(self.names.to_ident[fname] + rest, fname + rest, tok)
                continue
            head, dot, rest = name.partition(".")
            # A dotted name is a field even when its first part names a macro: Falco's
            # `container.id` under a macro called `container` is a field, not the macro.
            if dot and (head in self.names.namespaces or head in self.macros
                        or self.bridge.is_falco_field(name)):
                hint = suggest(name, list(self.names.to_ident))
                if not hint and self.bridge.is_falco_field(name):
                    hint = ": a Falco field that ringwatch does not provide"
                raise ExpandError(tok.pos, f"unknown field {name!r}{hint}", unknown_field=True)
            rest = "." + rest if rest else ""
            if head in self.macros:
                if head in stack:
                    cycle = " -> ".join([*stack[stack.index(head):], head])
                    raise ExpandError(tok.pos, f"macro cycle: {cycle}")
                inner = self.macro(head, stack)
                if inner is None:
                    raise ExpandError(tok.pos, f"uses macro '{head}', which has errors")
                emit(f"({inner.engine}){rest}", f"({inner.falco}){rest}", tok)
                continue
            if head in self.lists:
                lit = self._bounded(self.list_text, tok, head)
                emit(lit + rest, lit + rest, tok)
                continue
            if head in FALCO_HINTS:
                raise ExpandError(tok.pos, f"Falco's {head!r} operator is not in ringwatch's syntax: "
                                           f"{FALCO_HINTS[head]}; or, for a file in Falco's syntax, add "
                                           "`- ringwatch: {syntax: falco}` to it")
            # Operators lex one character at a time here: "==" ends in "=".
            if before is not None and before.text in ("=", ",", "["):
                raise ExpandError(tok.pos, f"unknown name {head!r}: a string value needs quotes: \"{head}\"")
            known = [*self.names.to_ident, *self.macros, *self.lists]
            raise ExpandError(
                tok.pos, f"unknown name {head!r}: not a field, macro or list{suggest(head, known)}")
        self.total_chars += out_len
        result = Expanded("".join(eng), "".join(fal), chunks)
        depth = nesting(result.engine)
        if depth > limits.max_nesting:
            raise ExpandError(0, f"brackets nested {depth} deep once macros are expanded "
                                 f"(at most {limits.max_nesting})")
        return result

    @staticmethod
    def _bounded(get: Any, tok: Token, name: str | None = None) -> Any:
        try:
            return get(name or tok.text)
        except LimitError as exc:
            raise ExpandError(tok.pos, exc.message) from None

    # exceptions --------------------------------------------------------------------
    def exception_clause(self, exc: ExceptionDef) -> tuple[str, str] | None:
        """`(f1 == v1 and f2 in [...]) or (...)` for one exception, in both spellings.

        None when the exception has no values yet (Falco allows values to come later).
        Ordering comparisons are guarded with `!= null` so a missing field only makes
        that exception not apply.
        """
        for f, floc in zip(exc.fields, exc.field_locs, strict=True):
            if f not in self.names.to_ident:
                raise _ExcError(floc, f"exception '{exc.name}': unknown field {f!r}"
                                      f"{suggest(f, list(self.names.to_ident))}")
        rows_e: list[str] = []
        rows_f: list[str] = []
        for row, rloc in zip(exc.values, exc.value_locs, strict=True):
            parts_e: list[str] = []
            parts_f: list[str] = []
            for f, comp, value in zip(exc.fields, exc.comps, row, strict=True):
                rhs = self._exc_value(f, comp, value, exc.name, rloc)
                ident = self.names.to_ident[f]
                for target, name in ((parts_e, ident), (parts_f, f)):
                    target.append(self._exc_test(name, comp, rhs))
            rows_e.append("(" + " and ".join(parts_e) + ")")
            rows_f.append("(" + " and ".join(parts_f) + ")")
        if not rows_e:
            return None
        return " or ".join(rows_e), " or ".join(rows_f)

    @staticmethod
    def _exc_test(name: str, comp: str, rhs: str) -> str:
        if comp == "=":
            return f"{name} == {rhs}"
        if comp == "!=":
            return f"{name} != {rhs}"
        if comp in ("<", "<=", ">", ">="):
            return f"({name} != null and {name} {comp} {rhs})"
        if comp == "in":
            return f"{name} in {rhs}"
        if comp == "contains":
            return f"({name} != null and {rhs} in {name})"
        return f"{name} =~ {rhs}"  # startswith / endswith: rhs is the pattern

    def _exc_value(self, f: str, comp: str, value: Any, exc_name: str, loc: Loc) -> str:
        tp = self.names.types[f]
        where = f"exception '{exc_name}': {f}"
        if comp == "in":
            if isinstance(value, str) and value in self.lists:
                try:
                    return self.list_text(value)
                except LimitError as err:
                    raise _ExcError(loc, f"{where}: {err.message}") from None
            if not isinstance(value, list):
                raise _ExcError(loc, f"{where}: 'in' needs a list of values or a list name, got {value!r}")
            return "[" + ", ".join(self._scalar(tp, v, where, loc) for v in value) + "]"
        if comp in ("startswith", "endswith"):
            if not isinstance(value, str):
                raise _ExcError(loc, f"{where}: {comp} needs a string, got {value!r}")
            pattern = "^" + re.escape(value) if comp == "startswith" else ".*" + re.escape(value) + "$"
            return quote(pattern)
        if comp == "contains" and tp is list:
            return literal(value)
        return self._scalar(tp, value, where, loc)

    @staticmethod
    def _scalar(tp: type, value: Any, where: str, loc: Loc) -> str:
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise _ExcError(loc, f"{where}: expected an integer, got {value!r}")
            try:
                return str(int(value))
            except ValueError:
                raise _ExcError(loc, f"{where}: expected an integer, got {value!r}") from None
        if tp is bool:
            if not isinstance(value, bool):
                raise _ExcError(loc, f"{where}: expected true or false, got {value!r}")
            return literal(value)
        if isinstance(value, (list, dict)):
            raise _ExcError(loc, f"{where}: expected a single value, got {value!r}")
        return quote(str(value))


class _ExcError(Exception):
    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


ExceptionError = _ExcError
