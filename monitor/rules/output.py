"""Output templates, Falco's syntax: `%proc.name` inserts a field, `%proc.aname[1]` one item.

A reference takes the longest catalog name its dotted text starts with, so in
"%proc.name." the final dot is text. A field the event lacks renders as <NA>; a list
renders comma-separated; unknown fields are load errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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


def render_value(value: Any) -> str:
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

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.field for p in self.parts if isinstance(p, FieldRef)))

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
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = event.get(part.field)
            if part.index is not None:
                try:
                    value = value[part.index] if isinstance(value, (list, tuple)) else None
                except IndexError:
                    value = None
            out.append(render_value(value))
        return "".join(out)
