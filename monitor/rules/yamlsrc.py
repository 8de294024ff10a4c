"""Reads a rules file into items that remember where each of their values came from.

PyYAML's composer keeps node positions; the plain constructors drop them. Items are
built from the composed nodes, so every later error can point at a line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.rules.problems import Loc, Problem
from monitor.yamltext import PARSE_FAILURES, describe

ITEM_KINDS = ("rule", "list", "macro")
# File-level items: Falco's version requirements and ringwatch's own marker.
FILE_ITEMS = ("required_engine_version", "required_plugin_versions", "ringwatch")
SYNTAXES = ("ringwatch", "falco")


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads a bare `=` as the string "=" (Falco writes `comps: [=, in]`;
    YAML 1.1 makes `=` a "value" tag that PyYAML cannot construct)."""


def _value_as_string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:value", _value_as_string)


def node_loc(file: str, node: yaml.Node) -> Loc:
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)


@dataclass(frozen=True, slots=True)
class ScalarSource:
    """Where a string value sits in its file, to turn offsets inside it into line:col."""

    loc: Loc
    style: str | None  # None (plain), "'", '"', "|" or ">"
    raw: str  # the file text the scalar spans

    def locate(self, offset: int, value: str) -> Loc:
        """The file position of value[offset].

        YAML may fold lines and strip indentation, but it keeps every non-blank
        character in order (escapes aside), so the n-th non-blank character of the
        value is the n-th non-blank character of the raw text after the indicator.
        """
        wanted = sum(1 for ch in value[:offset] if not ch.isspace())
        start = 0
        if self.style in ("|", ">"):
            start = self.raw.find("\n") + 1 if "\n" in self.raw else len(self.raw)
        elif self.style in ("'", '"'):
            start = 1
        seen = 0
        pos = start
        while pos < len(self.raw):
            if not self.raw[pos].isspace():
                if seen == wanted:
                    break
                seen += 1
            pos += 1
        pos = min(pos, max(len(self.raw) - 1, 0))
        before = self.raw[:pos]
        newlines = before.count("\n")
        if newlines == 0:
            return Loc(self.loc.file, self.loc.line, self.loc.col + pos)
        return Loc(self.loc.file, self.loc.line + newlines, pos - before.rfind("\n"))


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a file says about itself: its condition syntax and what it requires.

    The syntax is chosen per file: a `- ringwatch: {syntax: falco|ringwatch}` item says
    it; otherwise a `- required_engine_version:` item (every Falco rules file has one,
    ringwatch's never need one) makes it Falco's; otherwise it is ringwatch's.
    """

    syntax: str = "ringwatch"
    engine_version: str | None = None
    plugins: tuple[str, ...] = ()  # names from required_plugin_versions


@dataclass(slots=True)
class RawItem:
    kind: str
    name: str
    file: str
    loc: Loc
    values: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, yaml.Node] = field(default_factory=dict)
    text: str = ""  # the whole file, for ScalarSource
    syntax: str = "ringwatch"  # the condition language of the file the item is in

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'"

    def loc_of(self, key: str) -> Loc:
        node = self.nodes.get(key)
        return self.loc if node is None else node_loc(self.file, node)

    def scalar(self, key: str) -> ScalarSource:
        node = self.nodes[key]
        raw = self.text[node.start_mark.index : node.end_mark.index]
        style = node.style if isinstance(node, yaml.ScalarNode) else None
        return ScalarSource(node_loc(self.file, node), style, raw)


def _yaml_problem(file: str, exc: BaseException, text: str) -> Problem:
    failure = describe(exc, text)
    return Problem(Loc(file, failure.line, failure.col), "", f"invalid YAML: {failure.message}")


def parse_text(text: str, file: str) -> tuple[list[RawItem], list[Problem]]:
    items, problems, _ = parse_text_info(text, file)
    return items, problems


def _file_info(loader: _Loader, root: yaml.SequenceNode, file: str) -> tuple[FileInfo, list[Problem]]:
    syntax: str | None = None
    version: str | None = None
    plugins: list[str] = []
    problems: list[Problem] = []
    for entry in root.value:
        if not isinstance(entry, yaml.MappingNode):
            continue
        for knode, vnode in entry.value:
            if not isinstance(knode, yaml.ScalarNode) or knode.value not in FILE_ITEMS:
                # Only file-level items here: constructing a rule's values twice would make
                # a value the constructor refuses look like a recursive node the second time.
                continue
            try:
                value = loader.construct_object(vnode, deep=True)
            except PARSE_FAILURES:
                continue  # reported when the item itself is read
            loc = node_loc(file, vnode)
            if knode.value == "ringwatch":
                chosen = value.get("syntax") if isinstance(value, dict) else None
                if not isinstance(value, dict) or set(value) - {"syntax"} or chosen not in SYNTAXES:
                    problems.append(Problem(loc, "", "ringwatch: expected {syntax: falco} "
                                                     "or {syntax: ringwatch}"))
                else:
                    syntax = chosen
            elif knode.value == "required_engine_version":
                if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                    problems.append(Problem(loc, "", "required_engine_version: expected a version"))
                else:
                    version = str(value)
            elif knode.value == "required_plugin_versions":
                if not isinstance(value, list) or not all(isinstance(p, dict) and "name" in p for p in value):
                    problems.append(Problem(loc, "", "required_plugin_versions: expected a list "
                                                     "of {name, version}"))
                else:
                    plugins += [str(p["name"]) for p in value]
    if syntax is None:
        syntax = "falco" if version is not None else "ringwatch"
    return FileInfo(syntax, version, tuple(plugins)), problems


def parse_text_info(text: str, file: str) -> tuple[list[RawItem], list[Problem], FileInfo]:
    try:
        # The reader checks every character when it is made: a NUL or ESC fails here.
        loader = _Loader(text)
    except PARSE_FAILURES as exc:
        return [], [_yaml_problem(file, exc, text)], FileInfo()
    try:
        try:
            root = loader.get_single_node()
        except PARSE_FAILURES as exc:
            return [], [_yaml_problem(file, exc, text)], FileInfo()
        if root is None:
            return [], [], FileInfo()
        if not isinstance(root, yaml.SequenceNode):
            bad = Problem(node_loc(file, root), "", "a rules file must be a YAML list of items")
            return [], [bad], FileInfo()
        info, problems = _file_info(loader, root, file)
        items: list[RawItem] = []
        for entry in root.value:
            item, problem = _item(loader, entry, file, text)
            if problem is not None:
                problems.append(problem)
            elif item is not None:
                item.syntax = info.syntax
                items.append(item)
        return items, problems, info
    finally:
        loader.dispose()


def _item(
    loader: _Loader, node: yaml.Node, file: str, text: str
) -> tuple[RawItem | None, Problem | None]:
    loc = node_loc(file, node)
    if not isinstance(node, yaml.MappingNode):
        return None, Problem(loc, "", f"each item must be a mapping with one of {', '.join(ITEM_KINDS)}")
    values: dict[str, Any] = {}
    nodes: dict[str, yaml.Node] = {}
    for knode, vnode in node.value:
        try:
            key = loader.construct_object(knode, deep=True)
            value = loader.construct_object(vnode, deep=True)
        except PARSE_FAILURES as exc:
            problem = _yaml_problem(file, exc, text)
            if not isinstance(exc, yaml.YAMLError):  # a value the constructor refused: point at it
                problem = Problem(node_loc(file, vnode), "", problem.message)
            return None, problem
        if not isinstance(key, str):
            return None, Problem(node_loc(file, knode), "", f"keys must be strings, got {key!r}")
        if key in values:
            return None, Problem(node_loc(file, knode), "", f"duplicate key {key!r}")
        values[key] = value
        nodes[key] = vnode
    kinds = [k for k in ITEM_KINDS if k in values]
    if not kinds:
        if any(k in values for k in FILE_ITEMS):
            return None, None
        return None, Problem(loc, "", f"item has none of {', '.join(ITEM_KINDS)} (keys: {', '.join(values)})")
    if len(kinds) > 1:
        return None, Problem(loc, "", f"item has more than one of {', '.join(kinds)}")
    kind = kinds[0]
    name = values.pop(kind)
    name_node = nodes.pop(kind)
    if not isinstance(name, str) or not name.strip():
        return None, Problem(node_loc(file, name_node), "", f"{kind}: the name must be a non-empty string")
    return RawItem(kind, name, file, loc, values, nodes, text), None


def parse_file(path: Path, max_bytes: int | None = None) -> tuple[list[RawItem], list[Problem]]:
    items, problems, _ = parse_file_info(path, max_bytes)
    return items, problems


def parse_file_info(path: Path, max_bytes: int | None = None
                    ) -> tuple[list[RawItem], list[Problem], FileInfo]:
    try:
        with open(path, "rb") as fh:
            # One byte over the bound tells a file that is too large without reading it all.
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            too_big = Problem(Loc(str(path), 1, 1), "", f"rules file larger than {max_bytes} bytes")
            return [], [too_big], FileInfo()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        return [], [Problem(Loc(str(path), 1, 1), "", f"cannot read rules file: {reason}")], FileInfo()
    return parse_text_info(text, str(path))
