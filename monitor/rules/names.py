"""Falco field names <-> rule-engine identifiers, derived at load time from the fields the
event source provides (the engine knows none of its own: ringwatch hands it the event
catalogue's, see monitor.config.rule_sources).

rule-engine reads `proc.name` as attribute `name` of symbol `proc`, so every catalog name
is rewritten to one identifier (`proc.name` -> `proc__name`) before parsing, and the
resolver maps it back to the event's key: events stay flat dicts keyed by Falco names,
which is the cheapest shape for rule-engine to evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rule_engine

_NON_IDENT = re.compile(r"[^A-Za-z0-9_]")


def identifier(name: str) -> str:
    return _NON_IDENT.sub("__", name)


def _engine_type(tp: type) -> Any:
    if tp is bool:
        return rule_engine.DataType.BOOLEAN
    if tp in (int, float):
        return rule_engine.DataType.FLOAT
    if tp is str:
        return rule_engine.DataType.STRING
    if tp in (list, tuple):
        return rule_engine.DataType.ARRAY
    return rule_engine.DataType.UNDEFINED


@dataclass(frozen=True)
class FieldNames:
    to_ident: dict[str, str]
    to_field: dict[str, str]
    types: dict[str, type]  # Falco name -> Python type from the catalog
    engine_types: dict[str, Any]  # identifier -> rule-engine DataType
    namespaces: frozenset[str]  # "proc", "evt", ...: a dotted name under one must be a field

    @classmethod
    def from_types(cls, fields: Mapping[str, type]) -> FieldNames:
        """From field name -> Python type (bool, int, float, str, list)."""
        to_ident: dict[str, str] = {}
        to_field: dict[str, str] = {}
        for name in fields:
            ident = identifier(name)
            if ident in to_field:
                raise ValueError(f"fields {to_field[ident]!r} and {name!r} map to one identifier {ident!r}")
            to_ident[name] = ident
            to_field[ident] = name
        return cls(
            to_ident=to_ident,
            to_field=to_field,
            types=dict(fields),
            engine_types={to_ident[name]: _engine_type(tp) for name, tp in fields.items()},
            namespaces=frozenset(name.split(".", 1)[0] for name in fields),
        )

    def longest_field(self, dotted: str) -> tuple[str, str] | None:
        """(field, rest) for the longest catalog name that `dotted` starts with, segment-wise."""
        parts = dotted.split(".")
        for k in range(len(parts), 0, -1):
            head = ".".join(parts[:k])
            if head in self.to_ident:
                rest = ".".join(parts[k:])
                return head, ("." + rest if rest else "")
        return None
