"""Output templates, Falco's syntax: `%proc.name` inserts a field, `%proc.aname[1]` one item.

A reference takes the longest catalog name its dotted text starts with, so in
"%proc.name." the final dot is text. A field the event lacks renders as <NA>; a list
renders comma-separated; unknown fields are load errors.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from monitor.rules.names import FieldNames

MISSING = "<NA>"
_REF = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?:\[(\d+)\])?")


class TemplateError(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldRef:
    field: str
    index: int | None
    # Falco-syntax outputs: the value computed with Falco's meaning (None: the field is
    # one ringwatch lacks, rendered <NA> as Falco renders an unavailable field).
    compute: Callable[[dict[str, Any]], Any] | None = dataclasses.field(default=None, compare=False)
    falco: bool = False


# (name as written, index) -> compute function, or None for a field ringwatch lacks;
# raises TemplateError for a name that is no field at all.
# (field, its [argument] as written or None, position): how to compute it, None if missing.
Resolver = Callable[[str, str | None, int], Callable[[dict[str, Any]], Any] | None]
_FALCO_REF = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?:\[([^\]\s]+)\])?")


def render_value(value: Any) -> str:
    # The common classes first, by exact class (bool is not int here); anything else
    # takes the general path below, so the result is the same.
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if cls is int:
        return str(value)
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(render_value(v) for v in value)
    return str(value)


@dataclass(frozen=True, slots=True)
class OutputTemplate:
    text: str
    parts: tuple[str | FieldRef, ...]
    # Templates of plain references only (no index, no Falco-computed field): the literal
    # text as one str.format pattern and the fields in order, so render() is one C call
    # instead of a loop over the parts (it was the costliest step of an alert).
    _pattern: str | None = dataclasses.field(default=None, init=False, compare=False, repr=False)
    _fields: tuple[str, ...] = dataclasses.field(default=(), init=False, compare=False, repr=False)
    _unique: tuple[str, ...] = dataclasses.field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if any(isinstance(p, FieldRef) and (p.falco or p.index is not None) for p in self.parts):
            return
        pattern = "".join(p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else "{}"
                          for p in self.parts)
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "_fields", tuple(p.field for p in self.parts if isinstance(p, FieldRef)))
        object.__setattr__(self, "_unique", tuple(dict.fromkeys(self._fields)))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.field for p in self.parts if isinstance(p, FieldRef)))

    def values(self, event: dict[str, Any]) -> dict[str, Any]:
        """output_fields: catalog fields by name; Falco-syntax references as written."""
        if self._pattern is not None:
            get = event.get
            return {f: get(f) for f in self._unique}
        out: dict[str, Any] = {}
        for p in self.parts:
            if isinstance(p, FieldRef):
                if p.falco:
                    out[p.field] = _computed(p, event)
                else:
                    out.setdefault(p.field, event.get(p.field))
        return out

    @classmethod
    def parse_falco(cls, text: str, resolve: Resolver) -> OutputTemplate:
        """A Falco rule's output: every reference resolved with Falco's meaning."""
        text = text.strip()
        parts: list[str | FieldRef] = []
        pos = 0
        for m in _FALCO_REF.finditer(text):
            arg = m.group(2)
            written = m.group(1) + (f"[{arg}]" if arg is not None else "")
            # proc.aname[2] by number, proc.env[LD_PRELOAD] by name.
            compute = resolve(m.group(1), arg, m.start())
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            parts.append(FieldRef(written, None, compute, falco=True))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        return cls(text, tuple(parts))

    @classmethod
    def parse(cls, text: str, names: FieldNames) -> OutputTemplate:
        text = text.strip()  # folded YAML scalars end in a newline
        parts: list[str | FieldRef] = []
        pos = 0
        for m in _REF.finditer(text):
            found = names.longest_field(m.group(1))
            if found is None:
                raise TemplateError(m.start(), f"output: unknown field %{m.group(1)}")
            fname, rest = found
            index = m.group(2)
            if index is not None and rest:
                rest += f"[{index}]"
                index = None
            if index is not None and names.types[fname] is not list:
                raise TemplateError(m.start(), f"output: %{fname} is not a list and cannot be indexed")
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            parts.append(FieldRef(fname, None if index is None else int(index)))
            if rest:
                parts.append(rest)
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        return cls(text, tuple(parts))

    def render(self, event: dict[str, Any]) -> str:
        if self._pattern is not None:
            get = event.get
            return self._pattern.format(*[render_value(get(f)) for f in self._fields])
        out: list[str] = []
        append = out.append
        get = event.get
        for part in self.parts:
            if part.__class__ is str:  # parts are str or FieldRef, never a subclass of str
                append(part)
                continue
            part = cast(FieldRef, part)
            if part.falco:
                append(render_value(_computed(part, event)))
                continue
            value = get(part.field)
            if part.index is not None:
                try:
                    value = value[part.index] if isinstance(value, (list, tuple)) else None
                except IndexError:
                    value = None
            append(render_value(value))
        return "".join(out)


def _computed(ref: FieldRef, event: dict[str, Any]) -> Any:
    if ref.compute is None:
        return None
    try:
        return ref.compute(event)
    except Exception:  # an index past the end, a missing field: <NA>, as Falco prints
        return None
