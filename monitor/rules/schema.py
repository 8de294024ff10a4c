"""Rules, lists and macros as definitions, merged across files with Falco's override rules.

Items are checked key by key (unknown key, wrong type, bad priority or action) and then
merged in load order: a later item with an earlier name replaces it, or with
`override:` (Falco 0.36+) appends to or replaces single keys of it. Conditions are not
compiled here; that needs every list and macro, so it happens after all files load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from monitor.rules.problems import Loc, Problem
from monitor.rules.text import SourcedText
from monitor.rules.yamlsrc import RawItem, node_loc

PRIORITIES = ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFORMATIONAL", "DEBUG")
PRIORITY_ALIASES = {"INFO": "INFORMATIONAL", "WARN": "WARNING", "CRIT": "CRITICAL", "EMERG": "EMERGENCY"}
ACTIONS = ("alert", "deny", "audit")
EXCEPTION_COMPS = ("=", "!=", "<", "<=", ">", ">=", "in", "startswith", "endswith", "contains")
# Falco's exception comps: every binary operator of its condition language.
FALCO_EXCEPTION_COMPS = (*EXCEPTION_COMPS, "==", "pmatch", "intersects", "icontains", "bcontains",
                         "bstartswith", "glob", "iglob", "regex")

RULE_KEYS = {"desc", "condition", "output", "priority", "tags", "enabled", "action", "exceptions",
             "source", "override", "append", "warn_evttypes", "skip-if-unknown-filter"}
LIST_KEYS = {"items", "override", "append"}
MACRO_KEYS = {"condition", "override", "append"}
# What each kind lets `override:` do to each key.
OVERRIDABLE: dict[str, dict[str, set[str]]] = {
    "rule": {
        "append": {"condition", "output", "desc", "tags", "exceptions"},
        "replace": {"condition", "output", "desc", "priority", "tags", "exceptions", "enabled", "action",
                    "warn_evttypes", "skip-if-unknown-filter"},
    },
    "list": {"append": {"items"}, "replace": {"items"}},
    "macro": {"append": {"condition"}, "replace": {"condition"}},
}
REQUIRED = {"rule": ("condition", "output", "priority"), "list": ("items",), "macro": ("condition",)}


@dataclass(slots=True)
class ExceptionDef:
    name: str
    fields: list[str]
    comps: list[str]
    values: list[list[Any]]  # one row per exception; a row has one value per field
    single: bool  # `fields: proc.name` (one field, values are a flat list) rather than a list
    loc: Loc
    field_locs: list[Loc]
    value_locs: list[Loc]


@dataclass(slots=True)
class ListDef:
    name: str
    items: list[Any]
    loc: Loc


@dataclass(slots=True)
class MacroDef:
    name: str
    condition: SourcedText
    loc: Loc
    syntax: str = "ringwatch"


@dataclass(slots=True)
class RuleDef:
    name: str
    condition: SourcedText
    output: str
    output_loc: Loc
    priority: str
    loc: Loc
    desc: str = ""
    tags: list[str] = field(default_factory=list)
    enabled: bool = True
    action: str = "alert"
    exceptions: list[ExceptionDef] = field(default_factory=list)
    syntax: str = "ringwatch"  # the condition language (the file's: see yamlsrc.FileInfo)
    source: str = "syscall"
    warn_evttypes: bool = True  # warn when the condition does not restrict evt.type
    skip_if_unknown_filter: bool = False  # Falco: skip, not fail, on an unknown field


@dataclass(slots=True)
class Definitions:
    """Everything loaded, in first-definition order, after overrides."""

    rules: dict[str, RuleDef] = field(default_factory=dict)
    lists: dict[str, ListDef] = field(default_factory=dict)
    macros: dict[str, MacroDef] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


class _Bad(Exception):
    """One problem with one item; stops that item only."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _str(item: RawItem, key: str) -> str:
    value = item.values[key]
    if not isinstance(value, str):
        raise _Bad(item.loc_of(key), f"{key}: expected a string, got {_type_name(value)}")
    return value


def _text(item: RawItem, key: str) -> SourcedText:
    value = _str(item, key)
    if not value.strip():
        raise _Bad(item.loc_of(key), f"{key}: must not be empty")
    return SourcedText.of(value, item.scalar(key), item.loc_of(key))


def _str_list(item: RawItem, key: str) -> list[str]:
    value = item.values[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(item.loc_of(key), f"{key}: expected a list of strings")
    return value


def _priority(item: RawItem) -> str:
    value = _str(item, "priority").strip().upper()
    value = PRIORITY_ALIASES.get(value, value)
    if value not in PRIORITIES:
        raise _Bad(item.loc_of("priority"),
                   f"priority: {item.values['priority']!r} is not one of {', '.join(PRIORITIES)}")
    return value


def _action(item: RawItem) -> str:
    value = _str(item, "action").strip().lower()
    if value not in ACTIONS:
        raise _Bad(item.loc_of("action"),
                   f"action: {item.values['action']!r} is not one of {', '.join(ACTIONS)}")
    return value


def _bool(item: RawItem, key: str) -> bool:
    value = item.values[key]
    if not isinstance(value, bool):
        raise _Bad(item.loc_of(key), f"{key}: expected true or false, got {_type_name(value)} {value!r}")
    return value


def _list_items(item: RawItem) -> list[Any]:
    value = item.values["items"]
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(item.loc_of("items"), f"items: expected a list, got {_type_name(value)}")
    for i, v in enumerate(value):
        if not isinstance(v, (str, int, float)) :
            raise _Bad(item.loc_of("items"), f"items[{i}]: expected a string or number, got {_type_name(v)}")
    return value


def _seq_locs(file: str, node: yaml.Node | None, fallback: Loc, n: int) -> list[Loc]:
    if isinstance(node, yaml.SequenceNode) and len(node.value) == n:
        return [node_loc(file, v) for v in node.value]
    return [fallback] * n


def _map_value_node(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                found: yaml.Node = v
                return found
    return None


def _exceptions(item: RawItem, known: Sequence[ExceptionDef] = ()) -> list[ExceptionDef]:
    """The item's exceptions; `known` are the rule's existing ones, whose fields an
    appended exception of the same name may leave out (Falco: values only)."""
    earlier = {e.name: e for e in known}
    raw = item.values["exceptions"]
    if raw is None:
        return []
    seq = item.nodes["exceptions"]
    if not isinstance(raw, list):
        raise _Bad(item.loc_of("exceptions"), "exceptions: expected a list")
    out: list[ExceptionDef] = []
    for i, exc in enumerate(raw):
        enode = seq.value[i] if isinstance(seq, yaml.SequenceNode) else seq
        eloc = node_loc(item.file, enode)
        where = f"exceptions[{i}]"
        if not isinstance(exc, dict):
            raise _Bad(eloc, f"{where}: expected a mapping with name, fields, comps, values")
        unknown = set(exc) - {"name", "fields", "comps", "values"}
        if unknown:
            raise _Bad(eloc, f"{where}: unknown key {sorted(unknown)[0]!r} "
                             "(known: comps, fields, name, values)")
        name = exc.get("name")
        if not isinstance(name, str) or not name:
            raise _Bad(eloc, f"{where}.name: expected a non-empty string")
        where = f"exception '{name}'"
        fields_v = exc.get("fields")
        comps_v = exc.get("comps")
        if fields_v is None and name in earlier:
            fields_v = earlier[name].fields[0] if earlier[name].single else earlier[name].fields
            comps_v = earlier[name].comps[0] if earlier[name].single else earlier[name].comps
        single = isinstance(fields_v, str)
        fields_node = _map_value_node(enode, "fields")
        floc = node_loc(item.file, fields_node) if fields_node is not None else eloc
        if isinstance(fields_v, str):
            fields = [fields_v]
        elif isinstance(fields_v, list) and fields_v and all(isinstance(f, str) for f in fields_v):
            fields = list(fields_v)
        else:
            raise _Bad(floc, f"{where}: fields: expected a field name or a non-empty list of field names")
        comps_node = _map_value_node(enode, "comps")
        cloc = node_loc(item.file, comps_node) if comps_node is not None else eloc
        if comps_v is None:
            comps = ["in"] if single else ["="] * len(fields)
        elif single and isinstance(comps_v, str):
            comps = [comps_v]
        elif not single and isinstance(comps_v, list) and all(isinstance(c, str) for c in comps_v):
            comps = list(comps_v)
        else:
            wanted = "one operator" if single else "a list of operators"
            raise _Bad(cloc, f"{where}: comps: expected {wanted}")
        if len(comps) != len(fields):
            raise _Bad(cloc, f"{where}: comps: {len(comps)} operators for {len(fields)} fields")
        allowed_comps = FALCO_EXCEPTION_COMPS if item.syntax == "falco" else EXCEPTION_COMPS
        for c in comps:
            if c not in allowed_comps:
                raise _Bad(cloc, f"{where}: comps: unknown operator {c!r} "
                                 f"(known: {' '.join(allowed_comps)})")
        values_v = exc.get("values", [])
        values_node = _map_value_node(enode, "values")
        vloc = node_loc(item.file, values_node) if values_node is not None else eloc
        if values_v is None:
            values_v = []
        if not isinstance(values_v, list):
            raise _Bad(vloc, f"{where}: values: expected a list")
        rows: list[list[Any]] = []
        row_locs = _seq_locs(item.file, values_node, vloc, len(values_v))
        if single and comps[0] == "in" and values_v:
            # `fields: proc.name, comps: in, values: [a, b]` is one test: proc.name in [a, b].
            values_v, row_locs = [values_v], [vloc]
        for j, row in enumerate(values_v):
            if single:
                row = [row]
            if not isinstance(row, list) or len(row) != len(fields):
                raise _Bad(row_locs[j], f"{where}: values[{j}]: expected {len(fields)} values "
                                        f"(one per field: {', '.join(fields)})")
            rows.append(row)
        out.append(ExceptionDef(name, fields, comps, rows, single, eloc,
                                _seq_locs(item.file, fields_node, floc, len(fields)), row_locs))
    return out


def _check_keys(item: RawItem, known: set[str]) -> None:
    for key in item.values:
        if key not in known:
            raise _Bad(item.loc_of(key), f"unknown key {key!r} (known: {', '.join(sorted(known))})")


def _override_spec(item: RawItem) -> dict[str, str] | None:
    """The item's `override:` as key -> append|replace, or the legacy `append: true`."""
    if "override" in item.values and "append" in item.values:
        raise _Bad(item.loc_of("append"), "use either override or append, not both")
    if "append" in item.values:
        if not _bool(item, "append"):
            return None
        keys = {"rule": ("condition", "exceptions"), "list": ("items",), "macro": ("condition",)}[item.kind]
        return {k: "append" for k in keys if k in item.values}
    if "override" not in item.values:
        return None
    spec = item.values["override"]
    if not isinstance(spec, dict) or not spec:
        raise _Bad(item.loc_of("override"), "override: expected a mapping of key: append|replace")
    allowed = OVERRIDABLE[item.kind]
    for key, how in spec.items():
        if how not in allowed:
            raise _Bad(item.loc_of("override"), f"override: {key}: expected append or replace, got {how!r}")
        if key not in allowed[how]:
            can = sorted(allowed[how])
            raise _Bad(item.loc_of("override"),
                       f"override: {key} cannot be {how}ed (can be: {', '.join(can)})")
        if key not in item.values:
            raise _Bad(item.loc_of("override"), f"override: {key} is overridden but the item has no {key}")
    for key in item.values:
        if key not in ("override", "append") and key not in spec:
            raise _Bad(item.loc_of(key),
                       f"{key}: not listed in override (add `{key}: append` or `{key}: replace`)")
    return {str(k): str(v) for k, v in spec.items()}


def _new_rule(item: RawItem) -> RuleDef:
    for key in REQUIRED["rule"]:
        if key not in item.values:
            raise _Bad(item.loc, f"missing required key {key!r}")
    rule = RuleDef(
        name=item.name,
        condition=_text(item, "condition"),
        output=_str(item, "output"),
        output_loc=item.loc_of("output"),
        priority=_priority(item),
        loc=item.loc,
        syntax=item.syntax,
    )
    _set_rule_keys(rule, item, set(item.values) - {"condition", "output", "priority"})
    return rule


def _set_rule_keys(rule: RuleDef, item: RawItem, keys: set[str]) -> None:
    if "desc" in keys:
        rule.desc = _str(item, "desc")
    if "tags" in keys:
        rule.tags = _str_list(item, "tags")
    if "enabled" in keys:
        rule.enabled = _bool(item, "enabled")
    if "action" in keys:
        rule.action = _action(item)
    if "exceptions" in keys:
        rule.exceptions = _exceptions(item)
    if "source" in keys:
        rule.source = _str(item, "source")  # a rule of another source is skipped at compile
    if "warn_evttypes" in keys:
        rule.warn_evttypes = _bool(item, "warn_evttypes")
    if "skip-if-unknown-filter" in keys:
        rule.skip_if_unknown_filter = _bool(item, "skip-if-unknown-filter")


def _same_syntax(syntax: str, item: RawItem) -> None:
    """Appending is textual (Falco's rule): both halves must be in one language."""
    if item.syntax != syntax:
        raise _Bad(item.loc_of("condition"),
                   f"condition: cannot append a {item.syntax}-syntax condition to a {syntax}-syntax one "
                   "(replace it instead, or mark this file with `- ringwatch: {syntax: " + syntax + "}`)")


def _merge_exceptions(old: list[ExceptionDef], new: list[ExceptionDef]) -> list[ExceptionDef]:
    """Appending an exception whose name exists adds its values (Falco's behaviour)."""
    merged = list(old)
    for exc in new:
        for i, have in enumerate(merged):
            if have.name == exc.name:
                if exc.fields and exc.fields != have.fields:
                    raise _Bad(exc.loc, f"exception '{exc.name}': appended fields {exc.fields} differ "
                                        f"from the original {have.fields}")
                merged[i] = replace(have, values=have.values + exc.values,
                                    value_locs=have.value_locs + exc.value_locs)
                break
        else:
            merged.append(exc)
    return merged


def _override_rule(rule: RuleDef, item: RawItem, spec: dict[str, str]) -> RuleDef:
    rule = replace(rule)
    for key, how in spec.items():
        if how == "replace":
            if key == "condition":
                rule.condition = _text(item, "condition")
                rule.syntax = item.syntax
            elif key == "output":
                rule.output, rule.output_loc = _str(item, "output"), item.loc_of("output")
            elif key == "priority":
                rule.priority = _priority(item)
            else:
                _set_rule_keys(rule, item, {key})
            continue
        if key == "condition":
            extra = _str(item, "condition")
            _same_syntax(rule.syntax, item)
            rule.condition = rule.condition.append(extra, item.scalar("condition"), item.loc_of("condition"))
        elif key == "output":
            rule.output = rule.output + " " + _str(item, "output")
        elif key == "desc":
            rule.desc = (rule.desc + " " + _str(item, "desc")).strip()
        elif key == "tags":
            rule.tags = rule.tags + [t for t in _str_list(item, "tags") if t not in rule.tags]
        elif key == "exceptions":
            rule.exceptions = _merge_exceptions(rule.exceptions, _exceptions(item, rule.exceptions))
    return rule


def _is_definition(item: RawItem) -> bool:
    """A whole definition: not an override, an append, or a bare `enabled:` switch."""
    if "override" in item.values or item.values.get("append") is True:
        return False
    return not (item.kind == "rule" and set(item.values) == {"enabled"})


class Merger:
    """Folds items into Definitions in load order, collecting problems."""

    def __init__(self) -> None:
        self.defs = Definitions()
        self.problems: list[Problem] = []

    def add_file(self, file: str, items: list[RawItem]) -> None:
        self.defs.files.append(file)
        # A later file that defines a name again replaces it (Falco's override); the same
        # name defined twice in one file is a mistake that would silently drop the first.
        defined: dict[tuple[str, str], Loc] = {}
        for item in items:
            try:
                key = (item.kind, item.name)
                if key in defined and _is_definition(item):
                    raise _Bad(item.loc, f"defined twice in this file, first at {defined[key]} "
                                         "(to change it, use override: in a later file)")
                if _is_definition(item):
                    defined[key] = item.loc
                self._add(item)
            except _Bad as bad:
                self.problems.append(Problem(bad.loc, item.label, bad.message))

    def _add(self, item: RawItem) -> None:
        known = {"rule": RULE_KEYS, "list": LIST_KEYS, "macro": MACRO_KEYS}[item.kind]
        _check_keys(item, known)
        spec = _override_spec(item)
        if item.kind == "rule":
            self._add_rule(item, spec)
        elif item.kind == "list":
            self._add_list(item, spec)
        else:
            self._add_macro(item, spec)

    def _existing(self, item: RawItem, table: dict[str, Any]) -> Any:
        if item.name not in table:
            raise _Bad(item.loc, f"overrides a {item.kind} that no earlier file defines")
        return table[item.name]

    def _add_rule(self, item: RawItem, spec: dict[str, str] | None) -> None:
        rules = self.defs.rules
        if spec is not None:
            rules[item.name] = _override_rule(self._existing(item, rules), item, spec)
        elif set(item.values) == {"enabled"} and item.name in rules:
            # Falco lets a bare `enabled:` switch an earlier rule on or off.
            rules[item.name] = replace(rules[item.name], enabled=_bool(item, "enabled"))
        else:
            rules[item.name] = _new_rule(item)

    def _add_list(self, item: RawItem, spec: dict[str, str] | None) -> None:
        if "items" not in item.values:
            raise _Bad(item.loc, "missing required key 'items'")
        items = _list_items(item)
        lists = self.defs.lists
        if spec is not None and spec.get("items") == "append":
            old = self._existing(item, lists)
            lists[item.name] = ListDef(item.name, old.items + items, old.loc)
        else:
            if spec is not None:
                self._existing(item, lists)
            lists[item.name] = ListDef(item.name, items, item.loc)

    def _add_macro(self, item: RawItem, spec: dict[str, str] | None) -> None:
        if "condition" not in item.values:
            raise _Bad(item.loc, "missing required key 'condition'")
        macros = self.defs.macros
        if spec is not None and spec.get("condition") == "append":
            old = self._existing(item, macros)
            _same_syntax(old.syntax, item)
            text = old.condition.append(_str(item, "condition"), item.scalar("condition"),
                                        item.loc_of("condition"))
            macros[item.name] = MacroDef(item.name, text, old.loc, old.syntax)
        else:
            if spec is not None:
                self._existing(item, macros)
            macros[item.name] = MacroDef(item.name, _text(item, "condition"), item.loc, item.syntax)
