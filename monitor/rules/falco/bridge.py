"""Falco's field names resolved to ringwatch expressions, with Falco's meaning.

Three outcomes for a field a Falco condition names:
- an expression over ringwatch's catalog (`Resolved`): the same field (ringwatch's
  fields have Falco's meaning under Falco's names), or one computed from fields ringwatch
  has (`fd.typechar` from `fd.type`; unindexed `proc.aname`, any ancestor, as
  `proc.aname[1:]`);
- `MissingField`: a real Falco field ringwatch does not provide; the rule is skipped
  with a warning naming it (never evaluated with a field that is always null);
- `UnknownField`: neither Falco nor ringwatch has it (a typo): a load error.

When the event side starts providing a field under Falco's name and meaning, the
catalog entry wins over everything here except the ancestor fields (ANCESTORS).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from monitor.rules.falco.fieldtable import FalcoField, falco_fields
from monitor.rules.names import FieldNames

# Falco ancestor field -> (ringwatch list field, ringwatch field for index 0, element type).
# Both index alike ([0] the process itself); unindexed, Falco means any ancestor.
ANCESTORS = {
    "proc.aname": ("proc.aname", "proc.name", str),
    "proc.apid": ("proc.apid", "proc.pid", int),
    "proc.aexepath": ("proc.aexepath", "proc.exepath", str),
}
# Falco name -> (ringwatch expression, type) when the catalog has no field of that name.
DERIVED: dict[str, tuple[str, type]] = {
    # ringwatch records each syscall once, at its exit (bpf/sensor.bpf.c's sys_exit).
    "evt.dir": ('"<"', str),
    # Falco: a one-letter fd type.
    "fd.typechar": ('(fd.type == "file" ? "f" : (fd.type == "ipv4" ? "4" : (fd.type == "ipv6" ? "6"'
                    ' : (fd.type == "unix" ? "u" : (fd.type == "pipe" ? "p" : null)))))', str),
}
# Catalog fields that exist but are never set on the events Falco rules test.
UNSET = frozenset({"fd.snet"})


@dataclass(frozen=True, slots=True)
class Resolved:
    text: str  # ringwatch-syntax expression, catalog names
    type: type  # of the value, or of each element when `many`
    many: bool = False  # a multi-valued field: a check holds if it holds for any element


class MissingField(Exception):
    def __init__(self, pos: int, field: str, via: tuple[str, ...] = (), kind: str = "field") -> None:
        super().__init__(field)
        self.pos = pos
        self.field = field
        self.via = via  # macros the field was reached through, outermost first
        self.kind = kind  # "field", or "transformer" for b64() and the like

    def through(self, macro: str) -> MissingField:
        return MissingField(self.pos, self.field, (macro, *self.via), self.kind)

    @property
    def reason(self) -> str:
        through = f" (through macro {' -> '.join(self.via)})" if self.via else ""
        return f"needs {self.kind} {self.field}{through}, which ringwatch does not provide"


class UnknownField(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def _index(arg: str | None) -> int | None:
    if arg is None:
        return None
    try:
        return int(arg)
    except ValueError:
        return None


@dataclass
class Bridge:
    names: FieldNames
    falco: dict[str, FalcoField]

    @classmethod
    def create(cls, names: FieldNames) -> Bridge:
        return cls(names, falco_fields())

    def _catalog_type(self, name: str) -> type | None:
        return self.names.types.get(name)

    def resolve(self, name: str, arg: str | None, pos: int) -> Resolved:
        shown = name if arg is None else f"{name}[{arg}]"
        if name in ANCESTORS:
            many_field, self_field, etype = ANCESTORS[name]
            if many_field not in self.names.types:
                raise MissingField(pos, shown)
            if arg is None:
                return Resolved(f"({many_field} ?? [])[1:]", etype, many=True)
            n = _index(arg)
            if n is None or n < 0:
                raise UnknownField(pos, f"{name}[{arg}]: the index must be a number >= 0")
            if n == 0:
                # The same value, and present on events lineage knows nothing about.
                return Resolved(self_field, etype)
            return Resolved(f"{many_field}[{n}]", etype)
        if name in UNSET:
            raise MissingField(pos, shown)
        tp = self._catalog_type(name)
        if tp is not None:
            if arg is None:
                return Resolved(name, str if tp is list else tp, many=tp is list)
            n = _index(arg)
            if tp is list and n is not None:
                return Resolved(f"{name}[{n}]", str)
            if f"{name}.{arg}" in self.names.types:
                # proc.env[LD_PRELOAD] is proc.env.LD_PRELOAD (proc.env is a field too)
                full = f"{name}.{arg}"
                return Resolved(full, self.names.types[full])
            raise MissingField(pos, shown)
        if arg is not None and f"{name}.{arg}" in self.names.types:
            # evt.arg[flags] is evt.arg.flags
            full = f"{name}.{arg}"
            return Resolved(full, self.names.types[full])
        if name in DERIVED and arg is None:
            return Resolved(*DERIVED[name])
        if self.is_falco_field(name):
            raise MissingField(pos, shown)
        known = [*self.names.types, *self.falco]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownField(pos, f"unknown field {name!r}{hint}")

    def is_falco_field(self, name: str) -> bool:
        """name is one of Falco's fields, or an argument form of one (`evt.arg.flags`)."""
        if name in self.falco:
            return True
        head = name
        while "." in head:
            head = head.rsplit(".", 1)[0]
            f = self.falco.get(head)
            if f is not None and f.arg != "none":
                return True
        return False
