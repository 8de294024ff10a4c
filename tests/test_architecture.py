"""The package's shape: no import cycles, and the rules engine knows nothing of the application."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "monitor"


def _imports() -> dict[str, set[str]]:
    """module -> monitor modules it imports (a `from pkg import name` counts pkg.name if it is one)."""
    mods: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("monitor"):
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("monitor"))
        mods[name] = deps
    return {m: {d for d in deps if d in mods and d != m} for m, deps in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(_imports()) == []


def test_rules_engine_does_not_import_the_application() -> None:
    """monitor.rules is handed its fields and its directories; it imports no app module, not
    even the event catalogue (Falco's engine is independent of the event source too)."""
    app = ("monitor.config", "monitor.daemon", "monitor.cli", "monitor.kernel", "monitor.service",
           "monitor.sinks", "monitor.lineage", "monitor.paths", "monitor.events", "monitor.enforce",
           "monitor.pipeline", "monitor.replay")
    for mod, deps in _imports().items():
        if mod == "monitor.rules" or mod.startswith("monitor.rules."):
            bad = [d for d in deps if d.startswith(app)]
            assert not bad, f"{mod} imports {bad}"


def test_every_stage_is_a_package() -> None:
    for stage in ("kernel", "events", "lineage", "rules", "enforce", "sinks", "service"):
        assert (PKG / stage / "__init__.py").is_file(), stage
