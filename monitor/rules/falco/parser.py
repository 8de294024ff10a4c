"""Falco's condition grammar, parsed as libsinsp does (userspace/libsinsp/filter/parser.cpp).

libsinsp's parser is scannerless: each rule consumes a regex or a literal at the cursor,
so "words" depend on where they appear (`sshd)` is the bare string `sshd` after `=`,
`runc:[0:PARENT]` is one bare string in a list). This follows its structure function by
function, with its regexes:

    Expr      ::= And ('or' And)*
    And       ::= Not ('and' Not)*
    Not       ::= ('not' blank)* (Check | 'not(' Expr ')')
    Check     ::= '(' Expr ')' | Operand Condition | Identifier          (a macro)
    Operand   ::= FieldName ('[' Arg ']')? | Transformer '(' Operand ')'
    Condition ::= 'exists' | NumOp NumValue | StrOp StrValue | ListOp ListValue
    ListValue ::= '(' (Item (',' Item)*)? ')' | Identifier                  (a list)

    StrOp may take a modifier: `startswith anyof (a, b)`, `= oneof (...)`, `!= allof (...)`.

Extension: `[a, b]` is accepted as a list as well as `(a, b)` (ringwatch's own spelling).
"""

from __future__ import annotations

import re

from monitor.rules.falco.ast import (
    And,
    BinaryCheck,
    Expr,
    FieldRef,
    Ident,
    ListValue,
    Not,
    Operand,
    Or,
    Transform,
    UnaryCheck,
    Value,
)

_NOT_BLANK = re.compile(r"not\s+")
_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_FIELD_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+")
_FIELD_ARG_BARE = re.compile(r"[^\]\[\"'\s]+")
_HEX_NUM = re.compile(r"0[xX][0-9a-fA-F]+")
_NUMBER = re.compile(r"[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?")
_BARE_STR = re.compile(r"[^()\"'\s=,]+")
_BLANKS = " \t\b\r\n"

UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
# A trailing space: the operator must be followed by a blank (libsinsp's convention).
STR_OPS = ("==", "=", "!=", "glob ", "iglob ", "contains ", "icontains ", "bcontains ",
           "startswith ", "bstartswith ", "endswith ", "regex ")
LIST_OPS = ("intersects", "in", "pmatch")
# `proc.name startswith anyof (a, b)`: a string operator applied to each item of a list.
STR_MODIFIERS = ("oneof ", "anyof ", "allof ")
TRANSFORMERS = ("tolower(", "toupper(", "b64(", "basename(", "len(", "join(", "concat(", "getopt(")
MAX_DEPTH = 100


class FalcoSyntaxError(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def unescape(quoted: str) -> str:
    """The value of a quoted string, as libsinsp's unescape_str decodes it."""
    out: list[str] = []
    escaped = False
    simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
    for ch in quoted[1:-1]:
        if escaped:
            out.append(simple.get(ch, ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out)


def quote(value: str) -> str:
    """A Falco string literal for value (what `unescape` reads back)."""
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + body.replace("\r", "\\r") + '"'


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.last = ""

    # lexing helpers -----------------------------------------------------------------
    def fail(self, message: str, pos: int | None = None) -> FalcoSyntaxError:
        return FalcoSyntaxError(self.pos if pos is None else pos, message)

    def blank(self) -> bool:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _BLANKS:
            self.pos += 1
        return self.pos > start

    def lit(self, s: str) -> bool:
        if self.text.startswith(s, self.pos):
            self.pos += len(s)
            self.last = s
            return True
        return False

    def rgx(self, rx: re.Pattern[str]) -> bool:
        m = rx.match(self.text, self.pos)
        if m is None or not m.group():
            return False
        self.pos = m.end()
        self.last = m.group()
        return True

    def op_list(self, ops: tuple[str, ...]) -> bool:
        for op in ops:
            if not op.endswith(" "):
                if self.lit(op):
                    return True
                continue
            saved = self.pos
            if self.lit(op.strip()):
                if self.blank():
                    self.last = op.strip()
                    return True
                self.pos = saved
        return False

    def quoted(self) -> bool:
        if self.pos >= len(self.text) or self.text[self.pos] not in "'\"":
            return False
        delim = self.text[self.pos]
        # As libsinsp: a quote preceded by a backslash never closes (even after "\\\\").
        prev = "\\"
        i = self.pos
        while i < len(self.text):
            ch = self.text[i]
            if ch == delim and prev != "\\":
                self.last = unescape(self.text[self.pos : i + 1])
                self.pos = i + 1
                return True
            prev = ch
            i += 1
        raise self.fail("unterminated quoted string")

    def enter(self) -> None:
        self.depth += 1
        if self.depth >= MAX_DEPTH:
            raise self.fail(f"exceeded max depth limit of {MAX_DEPTH}")

    # grammar --------------------------------------------------------------------------
    def parse(self) -> Expr:
        if not self.text.strip():
            raise self.fail("condition is empty", 0)
        res = self.parse_or()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected token after {self.last!r}, expecting 'or', 'and'")
        return res

    def _joined(self, word: str, sub: object) -> list[Expr]:
        children: list[Expr] = []
        self.blank()
        children.append(sub())  # type: ignore[operator]
        self.blank()
        while True:
            saved = self.pos
            if not self.lit(word):
                break
            if self.blank():
                children.append(sub())  # type: ignore[operator]
            elif self.lit("("):
                children.append(self.embedded())
            else:
                self.pos = saved
                raise self.fail(f"expected blank or '(' after '{word}'")
            self.blank()
        return children

    def parse_or(self) -> Expr:
        self.enter()
        pos = self.pos
        children = self._joined("or", self.parse_and)
        self.depth -= 1
        return children[0] if len(children) == 1 else Or(tuple(children), pos)

    def parse_and(self) -> Expr:
        self.enter()
        pos = self.pos
        children = self._joined("and", self.parse_not)
        self.depth -= 1
        return children[0] if len(children) == 1 else And(tuple(children), pos)

    def parse_not(self) -> Expr:
        self.enter()
        self.blank()
        pos = self.pos
        negate = False
        while self.rgx(_NOT_BLANK):
            negate = not negate
        child: Expr
        if self.lit("not("):
            negate = not negate
            child = self.embedded()
        else:
            child = self.parse_check()
        self.depth -= 1
        return Not(child, pos) if negate else child

    def embedded(self) -> Expr:
        self.blank()
        child = self.parse_or()
        self.blank()
        if not self.lit(")"):
            raise self.fail("expected a ')' token")
        return child

    def parse_check(self) -> Expr:
        self.blank()
        pos = self.pos
        if self.lit("("):
            return self.embedded()
        if self.rgx(_FIELD_NAME):
            return self.condition(self.field_rest(self.last, pos), pos)
        if self.op_list(TRANSFORMERS):
            return self.condition(self.transform_rest(self.last[:-1], pos), pos)
        if self.rgx(_IDENTIFIER):
            return Ident(self.last, pos)
        raise self.fail("expected a '(' token, a field check, or an identifier")

    def field_rest(self, name: str, pos: int) -> FieldRef:
        if not self.lit("["):
            return FieldRef(name, None, pos)
        if not (self.quoted() or self.rgx(_FIELD_ARG_BARE)):
            raise self.fail("expected a valid field argument: a quoted string or a bare string")
        arg = self.last
        if not self.lit("]"):
            raise self.fail("expected a ']' token")
        return FieldRef(name, arg, pos)

    def operand(self) -> Operand:
        self.blank()
        pos = self.pos
        if self.op_list(TRANSFORMERS):
            return self.transform_rest(self.last[:-1], pos)
        if self.rgx(_FIELD_NAME):
            return self.field_rest(self.last, pos)
        raise self.fail("expected a field or a transformer")

    def transform_rest(self, name: str, pos: int) -> Transform:
        self.enter()
        args: list[Operand] = [self.operand()]
        self.blank()
        while self.lit(","):
            args.append(self.operand())
            self.blank()
        if not self.lit(")"):
            raise self.fail("expected a ')' token closing the transformer")
        self.depth -= 1
        return Transform(name, tuple(args), pos)

    def condition(self, left: Operand, pos: int) -> Expr:
        self.blank()
        op_pos = self.pos
        if self.op_list(UNARY_OPS):
            return UnaryCheck(left, self.last, pos)
        if self.op_list(NUM_OPS):
            op = self.last
            return BinaryCheck(left, op, self.num_value(), pos)
        if self.op_list(STR_OPS):
            op = self.last
            had_blank = op[0].isalpha() or self.blank()
            saved = self.pos
            if had_blank and self.op_list(STR_MODIFIERS) and self._list_follows():
                return BinaryCheck(left, f"{op} {self.last}", self.list_value(), pos)
            self.pos = saved
            return BinaryCheck(left, op, self.str_value(), pos)
        if self.op_list(LIST_OPS):
            op = self.last
            return BinaryCheck(left, op, self.list_value(), pos)
        ops = ", ".join(f"'{o.strip()}'" for o in (*UNARY_OPS, *NUM_OPS, *STR_OPS, *LIST_OPS))
        raise self.fail(f"expected a valid check operator: one of {ops}", op_pos)

    def _list_follows(self) -> bool:
        """After a modifier word: a list or a list name, not `and`/`or`/`not` (libsinsp)."""
        rest = self.text[self.pos :]
        if rest.startswith(("(", "[")):
            return True
        m = _IDENTIFIER.match(rest)
        return m is not None and m.group() not in ("and", "or", "not")

    def transformer_or_val(self) -> Operand | None:
        self.blank()
        pos = self.pos
        if self.lit("val("):
            self.blank()
            if not self.rgx(_FIELD_NAME):
                raise self.fail("expected a field within 'val' transformer")
            field = self.field_rest(self.last, self.pos - len(self.last))
            self.blank()
            if not self.lit(")"):
                raise self.fail("expected a ')' token closing the transformer")
            return Transform("val", (field,), pos)
        if self.op_list(TRANSFORMERS):
            return self.transform_rest(self.last[:-1], pos)
        return None

    def num_value(self) -> Operand | Value:
        found = self.transformer_or_val()
        if found is not None:
            return found
        pos = self.pos
        if self.rgx(_HEX_NUM) or self.rgx(_NUMBER):
            return Value(self.last, False, pos)
        raise self.fail("expected a number value or a field with a valid transformer")

    def str_value(self) -> Operand | Value:
        found = self.transformer_or_val()
        if found is not None:
            return found
        return self.plain_value("expected a string value or a field with a valid transformer")

    def plain_value(self, message: str) -> Value:
        self.blank()
        pos = self.pos
        if self.quoted():
            return Value(self.last, True, pos)
        if self.rgx(_BARE_STR):
            return Value(self.last, False, pos)
        raise self.fail(message)

    def list_value(self) -> ListValue | Ident | Operand:
        self.blank()
        pos = self.pos
        for open_, close in (("(", ")"), ("[", "]")):
            if self.lit(open_):
                return self.list_rest(pos, close)
        found = self.transformer_or_val()
        if found is not None:
            return found
        if self.rgx(_IDENTIFIER):
            return Ident(self.last, pos)
        raise self.fail("expected a list, an identifier, or a field with a valid transformer")

    def list_rest(self, pos: int, close: str) -> ListValue:
        items: list[Value] = []
        self.blank()
        if not self.lit(close):
            while True:
                item = self.plain_value("expected a list item: a quoted or bare string")
                if close == "]" and not item.quoted and item.text.endswith("]"):
                    # `[a, b]`: the bare-string regex would swallow the closing bracket.
                    self.pos -= 1
                    item = Value(item.text[:-1], False, item.pos)
                items.append(item)
                self.blank()
                if not self.lit(","):
                    break
            self.blank()
            if not self.lit(close):
                raise self.fail(f"expected a '{close}' token")
        return ListValue(tuple(items), pos)


def parse(text: str) -> Expr:
    """The AST of a Falco condition; raises FalcoSyntaxError with the offset of the problem."""
    return _Parser(text).parse()
