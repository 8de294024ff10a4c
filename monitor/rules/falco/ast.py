"""The AST of a Falco condition, as libsinsp's filter parser builds it (filter/ast.h).

Every node remembers `pos`, the offset in the condition text where it starts, so a
lowering error can name the file position.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldRef:
    """`proc.name`, `proc.aname[2]`, `evt.arg[0]`; `evt.arg.flags` keeps its dotted name."""

    name: str
    arg: str | None
    pos: int


@dataclass(frozen=True, slots=True)
class Transform:
    """`tolower(proc.name)`, `val(proc.pname)`: a transformer applied to a field (or another)."""

    name: str
    args: tuple[Operand, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Value:
    """A quoted or bare value; `text` is unescaped. Falco types it by the field it meets."""

    text: str
    quoted: bool
    pos: int


@dataclass(frozen=True, slots=True)
class ListValue:
    """`(a, "b c", other_list)`: items that name a list are resolved at lowering."""

    items: tuple[Value, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Ident:
    """A bare identifier: a macro in check position, a list name after a list operator."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    child: Expr
    pos: int


@dataclass(frozen=True, slots=True)
class UnaryCheck:
    """`proc.pname exists`."""

    left: Operand
    op: str
    pos: int


@dataclass(frozen=True, slots=True)
class BinaryCheck:
    left: Operand
    op: str
    right: Operand | Value | ListValue | Ident
    pos: int


Operand = FieldRef | Transform
Expr = And | Or | Not | UnaryCheck | BinaryCheck | Ident
