"""Differential test: the compiled evaluator (monitor/rules/compiled.py) gives rule-engine's
verdict (match, no match, or an error) for every rule and event we have.

Rules: the packaged default rules, the exec-only fixture rules and EXTRA below (one rule
per construct the compiler handles, and some it hands back to rule-engine). Events: the
recorded fixture, events shaped like the replay benchmark's, each of those with every
catalog field missing, null or of a wrong type, and seeded random events built from the
rules' own literals (so that rules do match).
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rule_engine import ast
from rule_engine.types import coerce_value

from bench.replay_rate import _event as bench_event
from monitor.events import catalog
from monitor.paths import rules_dir
from monitor.rules import CompiledRule, RuleSet, load
from monitor.rules.compiled import _literal_alternatives, get_attribute
from monitor.rules.guard import _attr_names
from tests.rules_util import EXEC_RULES, exec_event, sources, write

FIXTURE_EVENTS = Path(__file__).resolve().parent / "fixtures" / "exec_events.jsonl"

# Each condition exercises one construct (field types: see `ringwatch rules fields`).
EXTRA_CONDITIONS = [
    'proc.name == "bash"', 'proc.name != "bash"', "proc.name == null", "proc.name != null",
    "user.uid == 0", "user.uid != 0", "user.uid == 0.5", "user.uid != 2.5", "user.uid < 1000",
    "user.uid <= 0", "user.uid > 0", "user.uid >= 65534", "1000 > user.uid", "user.uid < 0.5",
    "user.uid == proc.pid", "user.uid != proc.pid", "proc.pid < proc.ppid", "proc.name == proc.pname",
    "proc.name != proc.pname", "evt.failed == false", "evt.failed != true", "evt.failed",
    "not evt.failed", "user.uid in [0, 33, 65534]", "proc.name in ['bash', 'sh', 'x']",
    "evt.failed in [true]", "proc.argv in [['bash']]", '"-e" in proc.argv', '"ba" in proc.name',
    "proc.name in proc.argv", "proc.name in proc.cmdline", "user.uid in proc.apid",
    '"O_TRUNC" in evt.arg.flags', 'proc.exe =~ "^/tmp/"', 'proc.exe =~ "^/(tmp|var)/"',
    'proc.exe =~ "^(?:/tmp/|/dev/shm/|a\\\\|b)"', 'proc.exe =~ ".*\\\\.sh$"', 'proc.exe =~~ "bin"',
    'proc.exe =~~ "(?i)BIN"', 'proc.exe !~ "^/usr/"', 'proc.exe !~~ "bin"', 'proc.exe !~ "(?i)^/USR"',
    'proc.exe startswith "/usr/"', 'proc.exe endswith "sh"', 'proc.aname[0] == "bash"',
    'proc.aname[5] == "x"', 'proc.aname[-1] == "systemd"', 'proc.aname&[7] == null',
    "proc.aname[0] == null", 'proc.argv[1:] == ["-c"]', 'proc.argv[1:2] == ["-c"]',
    "proc.argv[:1]", '(proc.aname ?? ["none"])[0] == "none"', '(proc.pname ?? "x") == "x"',
    '[a for a in proc.argv if a == "-c"]', "[a for a in proc.argv[1:] if a =~ \"^-\"]",
    '[a for a in (proc.aname ?? []) if a in ["bash", "cron"]]', "[a for a in proc.apid if a > 1]",
    '[a for a in (proc.aname ?? [])[1:] if a in ["bash", "cron"]]', '"cron" in (proc.aname ?? [])[1:]',
    '(proc.aname ?? [])[1:] == ["cron"]', '[p for p in (proc.apid ?? [])[1:] if p > 1]',
    '(proc.aname ?? ["x"])[1:] == []', "(proc.aname ?? [])[1:2] == ['cron']", "(proc.aname ?? [])[1:]",
    "(proc.aname ?? [])[1:] == []", "not (proc.apid ?? [])[2:]",
    '[a for a in proc.argv if not (a =~ "-")]', '[a for a in proc.argv if a !~ "^-"]',
    '[a for a in proc.argv if a != "bash"]', '[(a).as_upper for a in proc.argv]',
    '[a for a in proc.argv] == ["bash"]', '[x for x in proc.aname ?? proc.argv]', '[p for p in proc.apid]',
    'not [a for a in proc.argv if "x" in a]', '[proc.name, "x"] == ["bash", "x"]',
    "proc.name.as_lower == 'bash'", "proc.args.to_int == 1 or proc.name == 'x'",
    "user.uid + 1 == 1", "user.uid == 0 ? proc.name == 'bash' : false",
    '[a for a in [b for b in proc.argv] if a]', "proc.apid == [1]", "proc.apid[0] == 1",
    '(evt.type == "execve" or evt.type == "fork") and not (user.uid < 1000)',
    "user.uid in [0.1, 2]", "[a for a in proc.argv[1:] if a]",
    # ternaries: the condition's truth (a Decimal, a tuple, null), its errors (an ordering
    # with null is an error, not false), only the chosen case evaluated, nested as
    # Falco's fd.typechar and evt.res are lowered (monitor/rules/falco/bridge.py)
    "(user.uid < 1000 ? proc.name : \"x\") == \"bash\"", "user.uid ? true : false",
    "proc.argv ? proc.argv[0] == \"bash\" : proc.name == null", "(evt.failed ? 1 : 0) == 1",
    "(proc.name == null ? false : proc.name =~ \"^b\")", "proc.name ? proc.aname[9] == \"x\" : false",
    '(fd.type == "file" ? "f" : (fd.type == "ipv4" ? "4" : null)) == "f"',
    '(evt.errno == null ? null : (evt.errno == "" ? "SUCCESS" : evt.errno)) == "SUCCESS"',
    '(evt.errno == null ? null : (evt.errno == "" ? "SUCCESS" : evt.errno)) != "EPERM"',
    '[a for a in proc.argv if (a == "-c" ? true : a == "x")]', '(user.uid == 0 ? 1 : 2) > 1',
    # attributes, safe (&.) and not, on every class a field can hold (WRONG_TYPES: a
    # mapping takes rule-engine's key-lookup fallback), as Falco's icontains, iglob,
    # tolower(), toupper() and len() are lowered
    'proc.name&.as_lower == "bash"', '"bin" in proc.exe&.as_lower', 'proc.exe&.as_upper =~ "^/USR"',
    'proc.cmdline&.as_lower =~ "(?s).*bash.*"', "proc.name.as_upper == 'BASH'",
    "proc.cmdline&.length > 3", "proc.argv&.length == 2", "proc.name.length == 4", "user.uid&.to_int == 0",
    '[a for a in proc.argv if "x" in a&.as_lower]', '[a&.as_lower for a in proc.argv] == ["bash"]',
    '[a for a in (proc.aname ?? []) if a&.as_lower in ["bash", "cron"]]', "proc.aname[0]&.as_lower == 'bash'",
    "proc.aname&[1]&.as_lower == 'bash'", "(proc.pname ?? proc.name)&.as_lower == 'bash'",
    "(user.uid == 0 ? proc.name : proc.pname)&.as_lower == 'bash'",
    # the index folds evt.type and the facets (evt.failed, the open modes) to constants:
    # a side that may raise must stay evaluated beside a constant (monitor/rules/candidates.py)
    '[a for a in proc.argv if a == "-c"] and evt.failed == true',
    'evt.failed == true or [a for a in proc.argv if a == "-c"]',
    '[a for a in proc.argv if a == "-c"] or evt.failed != false',
    'not ([a for a in proc.argv if a == "-c"] and evt.failed == false)',
    'evt.type in ["execve", "openat"] and ([a for a in proc.argv if a] and evt.is_open_write == true)',
    '(evt.type == "openat" or [a for a in proc.argv if a]) and evt.is_open_read == false',
]

# The same in Falco's syntax: what monitor/rules/falco/lower.py writes for each.
FALCO_EXTRA_CONDITIONS = [
    "proc.cmdline icontains BaSh", "proc.aname icontains CRON", "proc.aname[2] icontains sh",
    "fd.name iglob /ETC/*", "tolower(proc.name) = bash", "toupper(proc.exe) startswith /USR",
    "len(proc.name) > 3", "len(proc.cmdline) = 0", "fd.typechar = f", "fd.typechar in (4, 6)",
    "evt.res = SUCCESS", "evt.res != EPERM", "proc.name icontains b and not fd.typechar = u",
]


def _extra_rules(tmp_path: Path) -> Path:
    text = "".join(f"- rule: extra {i}\n  condition: {json.dumps(c)}\n  output: o %proc.name\n"
                   f"  priority: INFO\n" for i, c in enumerate(EXTRA_CONDITIONS))
    text += """
- rule: extra exceptions
  condition: evt.type == "execve"
  output: o
  priority: INFO
  exceptions:
    - name: e
      fields: [proc.exe, user.uid, proc.aname, proc.cmdline, proc.name]
      comps: [startswith, "<", contains, endswith, "!="]
      values:
        - [/usr/lib/, 100, systemd, --quiet, bash]
"""
    return write(tmp_path, "extra.yaml", text)


FALCO_STABLE = Path(__file__).resolve().parent / "fixtures" / "falco" / "falco_rules.yaml"


def _falco_extra_rules(tmp_path: Path) -> Path:
    text = "- ringwatch: {syntax: falco}\n" + "".join(
        f"- rule: falco extra {i}\n  desc: d\n  condition: {json.dumps(c)}\n  output: o %proc.name\n"
        f"  priority: INFO\n" for i, c in enumerate(FALCO_EXTRA_CONDITIONS))
    return write(tmp_path, "falco_extra.yaml", text)


def _rulesets(tmp_path: Path) -> dict[str, RuleSet]:
    return {
        "default": load(sources(rules_dir() / "default.yaml")),
        "exec fixture": load(sources(EXEC_RULES)),
        # Falco's stable rules as written, lowered from Falco's syntax (monitor/rules/falco/).
        "falco stable": load(sources(FALCO_STABLE)),
        "extra": load(sources(_extra_rules(tmp_path))),
        "falco extra": load(sources(_falco_extra_rules(tmp_path))),
    }


# --- events ---------------------------------------------------------------------------------

WRONG_TYPES: list[Any] = [
    None, 0, 1, -1, 2**70, 0.5, 0.1, math.nan, math.inf, True, False, "", "bash", "/tmp/x",
    [], ["bash"], ["bash", 5], [["x"]], [None], {"a": 1}, {}, [1.5, "x"],
]


def _literals(rule: CompiledRule) -> list[Any]:
    """String and number literals in a rule's condition (regex prefixes unescaped)."""
    out: set[Any] = set()
    stack = [rule.ast]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.StringExpression, ast.FloatExpression)):
            out.add(node.value)
            if isinstance(node.value, str):
                out.update(_literal_alternatives(node.value) or ())
        for name in ("left", "right", "member", "container", "expression", "result", "iterable",
                     "condition", "value", "item", "object", "start", "stop"):
            child = getattr(node, name, None)
            if isinstance(child, ast.ExpressionBase):
                stack.append(child)
            elif isinstance(child, (tuple, list, set, frozenset)):
                stack.extend(c for c in child if isinstance(c, ast.ExpressionBase))
    return sorted(out, key=repr)


def _field_literals(rule: CompiledRule, ruleset: RuleSet) -> dict[str, list[Any]]:
    """For each field the condition compares with literals, those literals."""
    out: dict[str, set[Any]] = {}
    stack = [rule.ast]
    while stack:
        node = stack.pop()
        sides = [getattr(node, n, None) for n in ("left", "right", "member", "container")]
        sym = [x for x in sides if isinstance(x, ast.SymbolExpression) and x.scope is None
               and x.name in ruleset.names.to_field]
        lits = [x for x in sides if isinstance(x, ast.LiteralExpressionBase) and x.is_reduced]
        if sym and lits:
            target = out.setdefault(ruleset.field_of(sym[0].name), set())
            for lit in lits:
                values = lit.evaluate(None)
                for v in values if isinstance(values, tuple) else (values,):
                    if isinstance(v, str):
                        target.add(v)
                        target.update(_literal_alternatives(v) or ())
                    elif v is not None:
                        target.add(v)
        stack.extend(x for x in sides if isinstance(x, ast.ExpressionBase))
        for name in ("expression", "result", "iterable", "condition", "value", "item", "object"):
            child = getattr(node, name, None)
            if isinstance(child, ast.ExpressionBase):
                stack.append(child)
    return {k: sorted(v, key=repr) for k, v in out.items()}


def _base_events() -> list[dict[str, Any]]:
    events = [json.loads(line) for line in FIXTURE_EVENTS.read_text().splitlines() if line.strip()]
    rng = random.Random(7)
    events += [bench_event(rng, i, 10**9 + i) for i in range(300)]
    events.append(exec_event())
    return events


def _variant_bases(base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event of each type among the recorded ones, and the rules tests' exec event."""
    by_type = {ev.get("evt.type"): ev for ev in base}
    return [*by_type.values(), exec_event()]


def _field_variants(base: dict[str, Any], names: Iterable[str] = catalog.FIELDS) -> Iterator[dict[str, Any]]:
    for name in names:
        ev = dict(base)
        ev.pop(name, None)
        yield ev
        for value in WRONG_TYPES:
            yield {**base, name: value}


def _random_events(ruleset: RuleSet, n: int, seed: int) -> Iterator[dict[str, Any]]:
    """Events aimed at one rule each in turn: its event types, and the fields it reads
    set from its own literals (alone, extended, joined), of the wrong type now and then."""
    rng = random.Random(seed)
    rules = ruleset.rules
    literals = {r.name: _literals(r) or ["x"] for r in rules}
    by_field = {r.name: _field_literals(r, ruleset) for r in rules}
    all_types = sorted(set().union(*(r.event_types or set() for r in rules)) | {"execve"})

    def value(tp: type, pool: list[Any]) -> Any:
        roll = rng.random()
        if roll < 0.06:
            return rng.choice(WRONG_TYPES)
        strings = [v for v in pool if isinstance(v, str)] or ["x"]
        numbers = [int(v) for v in pool if isinstance(v, Decimal) and v.is_finite()] + [0, 1, 33, 999]
        if tp is str:
            text = rng.choice(strings)
            if roll < 0.3:
                text += rng.choice(strings)
            elif roll < 0.4:
                text = rng.choice(["", "x", "/"]) + text + rng.choice(["", "x", "/"])
            return text
        if tp is int:
            return rng.choice(numbers) if roll < 0.9 else rng.randint(-5, 70000)
        if tp is bool:
            return rng.random() < 0.5
        return [value(str, pool) if rng.random() < 0.9 else rng.choice(numbers)
                for _ in range(rng.randint(0, 4))]

    for i in range(n):
        rule = rules[i % len(rules)]
        pool = literals[rule.name]
        ev: dict[str, Any] = {}
        for name in sorted(rule.fields | {rng.choice(list(catalog.FIELDS))}):
            if rng.random() < 0.9:
                own = by_field[rule.name].get(name)
                ev[name] = value(catalog.FIELDS[name].type, own if own and rng.random() < 0.6 else pool)
        ev["evt.type"] = rng.choice(sorted(rule.event_types) if rule.event_types else all_types)
        yield ev


# Events matching rules the random events miss (all of a Falco rule's parts at once).
HIT_EVENTS: list[dict[str, Any]] = [
    # Falco's "Directory traversal monitored file read": fd.typechar and evt.res are ternaries
    {"evt.type": "openat", "evt.is_open_read": True, "fd.type": "file", "fd.num": 3,
     "fd.name": "/etc/passwd", "fd.nameraw": "/tmp/../../etc/passwd", "proc.pname": "python3"},
    {"evt.type": "openat", "evt.is_open_read": False, "fd.type": "file", "fd.num": -1, "evt.errno": "EACCES",
     "fd.name": "/etc/shadow", "fd.nameraw": "a/../../etc/shadow", "proc.pname": "python3"},
    # "Read sensitive file trusted after startup"
    {"evt.type": "open", "evt.is_open_read": True, "fd.type": "file", "fd.num": 4, "fd.name": "/etc/shadow",
     "fd.directory": "/etc", "proc.name": "nginx", "proc.duration": 6 * 10**9},
    # "Run shell untrusted": a shell under a web server (its ancestor macros read proc.aname)
    {"evt.type": "execve", "evt.res": "SUCCESS", "evt.rawres": 0, "evt.failed": False, "evt.errno": "",
     "proc.name": "sh", "proc.exe": "/bin/sh", "proc.cmdline": "sh -c id", "proc.pname": "nginx",
     "proc.pexe": "/usr/sbin/nginx", "proc.pcmdline": "nginx", "proc.aname": ["sh", "nginx", "systemd"],
     "proc.apid": [20, 10, 1]},
    # "Contact K8S API Server From Container": fd.sip.name is the watched names fd.sip resolved to
    {"evt.type": "connect", "fd.type": "ipv4", "fd.sip": "10.96.0.1", "container.id": "0123456789ab",
     "container.image.repository": "docker.io/library/alpine", "k8s.ns.name": "default",
     "fd.sip.name": ["kubernetes.default.svc.cluster.local"]},
    # "Detect release_agent File Container Escapes": thread.cap_effective as Falco renders it
    {"evt.type": "openat", "evt.is_open_write": True, "fd.type": "file", "fd.num": 3,
     "fd.name": "/sys/fs/cgroup/rdma/release_agent", "container.id": "0123456789ab", "user.uid": 1000,
     "thread.cap_effective": "CAP_CHOWN CAP_DAC_OVERRIDE CAP_SYS_ADMIN"},
    # "Disallowed SSH Connection Non Standard Port": fd.ip/fd.net/fd.snet on the hex keys
    {"evt.type": "connect", "fd.type": "ipv4", "fd.sip": "198.51.100.7", "fd.sport": 443, "fd.l4proto": "tcp",
     "fd.sip.hex": "00000000000000000000ffffc6336407", "fd.cip.hex": "00000000000000000000ffffc0000202",
     "evt.rawres": -115, "evt.res": "EINPROGRESS", "evt.errno": "EINPROGRESS", "proc.exe": "/usr/bin/ssh",
     "proc.argv": ["/usr/bin/ssh"], "fd.connected": True},
    # the Falco-syntax extras: len(proc.cmdline) = 0 (random events no longer draw an empty one)
    {"evt.type": "execve", "proc.name": "x", "proc.cmdline": ""},
    # the Falco-syntax extras: iglob, fd.typechar in (4, 6)
    {"evt.type": "openat", "fd.name": "/Etc/Passwd", "fd.type": "ipv6", "proc.name": "Bash"},
    # default rules that match on patterns random values do not reach
    {"evt.type": "openat", "evt.is_open_read": True, "evt.is_open_write": False, "fd.num": 3,
     "evt.arg.flags": "O_RDONLY", "fd.name": "/home/u/.aws/credentials", "fd.filename": "credentials",
     "proc.name": "cat", "proc.exepath": "/usr/bin/cat", "proc.is_name_exe": True, "proc.aname": ["bash"]},
    {"evt.type": "execve", "evt.failed": False, "proc.name": "sudoedit", "proc.exepath": "/usr/bin/sudo",
     "proc.argv": ["sudoedit", "-s", "\\", "x"], "proc.args": "-s \\ x"},
    {"evt.type": "execve", "evt.failed": False, "proc.name": "xmrig", "proc.exepath": "/tmp/xmrig",
     "proc.argv": ["xmrig", "-o", "stratum+tcp://pool.example:3333"], "proc.args": "-o stratum+tcp://pool.example:3333"},
    {"evt.type": "execve", "evt.failed": False, "proc.name": "nsenter", "proc.exepath": "/usr/bin/nsenter",
     "proc.argv": ["nsenter", "-t", "1", "-m", "sh"], "proc.args": "-t 1 -m sh"},
    {"evt.type": "openat", "evt.is_open_read": True, "fd.num": 3, "evt.arg.flags": "O_RDONLY",
     "fd.name": "/root/.ssh/id_rsa", "fd.filename": "id_rsa", "proc.name": "cat", "proc.aname": ["bash"]},
    {"evt.type": "openat", "evt.is_open_read": True, "fd.num": 3, "evt.arg.flags": "O_RDONLY",
     "fd.name": "/proc/42/mem", "fd.proc_pid": 42, "proc.pid": 7, "proc.tid": 7, "proc.name": "dumper"},
    {"evt.type": "openat", "evt.is_open_write": True, "fd.num": 3, "evt.arg.flags": "O_WRONLY|O_CREAT",
     "fd.name": "/usr/bin/.x", "fd.filename": ".x", "fd.directory": "/usr/bin", "proc.name": "cp"},
    # "len(proc.cmdline) = 0" (random values are rarely empty)
    {"evt.type": "execve", "proc.cmdline": "", "proc.name": "x"},
]


# --- verdicts -------------------------------------------------------------------------------

def verdict(fn: Callable[[dict[str, Any]], bool], event: dict[str, Any]) -> Any:
    try:
        return bool(fn(event))
    except Exception as exc:  # an error is a verdict too (RuleSet counts it)
        return f"error {type(exc).__name__}"


def _disagreements(rules: list[CompiledRule], events: Iterator[dict[str, Any]]) -> tuple[list[str], int]:
    bad: list[str] = []
    hits = 0
    for ev in events:
        for rule in rules:
            assert rule.engine_matches is not None
            want = verdict(rule.engine_matches, ev)
            got = verdict(rule.matches, ev)
            hits += want is True
            if want != got and len(bad) < 10:
                bad.append(f"{rule.name!r}: rule-engine {want}, compiled {got} on {ev}")
    return bad, hits


LABELS = ["default", "exec fixture", "extra", "falco stable", "falco extra"]

pytestmark = pytest.mark.filterwarnings("ignore::rule_engine.errors.MappingAttributeLookupDeprecation")


@pytest.fixture(scope="module")
def rulesets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RuleSet]:
    return _rulesets(tmp_path_factory.mktemp("rules"))


def test_no_fallbacks_on_shipped_and_fixture_rules(rulesets: dict[str, RuleSet]) -> None:
    for label in ("default", "exec fixture", "falco stable", "falco extra"):
        assert [(r.name, r.fallback_reason) for r in rulesets[label].fallbacks()] == [], label
    # What the compiler hands back to rule-engine, by construct (arithmetic, an array
    # literal holding a field).
    fallbacks = rulesets["extra"].fallbacks()
    assert 0 < len(fallbacks) < len(EXTRA_CONDITIONS) // 4, [(r.name, r.fallback_reason) for r in fallbacks]


def test_defaults_plus_falco_stable_rules_all_compile() -> None:
    # What `ringwatch rules validate tests/fixtures/falco/falco_rules.yaml` loads: the
    # packaged defaults and Falco's stable rules (the ones ringwatch can run), as one set.
    ruleset = load(sources(FALCO_STABLE, defaults=True))
    assert len(ruleset.rules) == 80  # as `rules validate` reports (some defaults share a name)
    assert [(r.name, r.fallback_reason) for r in ruleset.fallbacks()] == []


@pytest.mark.parametrize("label", LABELS)
def test_recorded_and_synthesised_events(rulesets: dict[str, RuleSet], label: str) -> None:
    rules = rulesets[label].rules
    base = _base_events()

    def events() -> Iterator[dict[str, Any]]:
        yield from base
        for ev in _variant_bases(base):
            yield from _field_variants(ev)

    bad, hits = _disagreements(rules, events())
    assert bad == []
    assert hits > 0  # the events reach matches, not only misses


# events per rule: the extra rules are many and short
@pytest.mark.parametrize(("label", "per_rule"), [("default", 100), ("exec fixture", 100), ("extra", 20),
                                               ("falco stable", 100), ("falco extra", 50)])
def test_random_events(rulesets: dict[str, RuleSet], label: str, per_rule: int) -> None:
    ruleset = rulesets[label]
    bad, hits = _disagreements(ruleset.rules, _random_events(ruleset, per_rule * len(ruleset.rules), seed=13))
    assert bad == []
    assert hits > 0


def test_every_default_rule_matches_some_random_event(rulesets: dict[str, RuleSet]) -> None:
    # The random events are only a test if they reach each rule's match: count per rule.
    ruleset = rulesets["default"]
    # 300 per rule, not 100: which rules a seed reaches shifts whenever the catalogue gains
    # fields (each event draws one random field); enough draws make that not matter.
    # Rules on argument or path patterns random values cannot reach have a hand-written hit.
    events = HIT_EVENTS + list(_random_events(ruleset, 300 * len(ruleset.rules), seed=13))
    never = [r.name for r in ruleset.rules if not any(verdict(r.engine_matches, ev) is True  # type: ignore[arg-type]
                                                     for ev in events)]
    assert len(never) <= 2, never


@pytest.mark.parametrize("label", LABELS)
def test_matching_events_with_each_read_field_wrong(rulesets: dict[str, RuleSet], label: str) -> None:
    # For each rule, a random (or hand-written) event it matches, then that event with
    # each field the rule reads missing or of a wrong type: near a match is where a wrong
    # operator shows.
    ruleset = rulesets[label]
    events = HIT_EVENTS + list(_random_events(ruleset, 100 * len(ruleset.rules), seed=13))
    hit_of = {rule.name: next((ev for ev in events if verdict(rule.engine_matches, ev) is True), None)  # type: ignore[arg-type]
              for rule in ruleset.rules}
    if label.startswith("falco"):  # every Falco rule (ternaries, attributes) is tested near a match
        assert [name for name, hit in hit_of.items() if hit is None] == []

    def variants() -> Iterator[dict[str, Any]]:
        for rule in ruleset.rules:
            hit = hit_of[rule.name]
            if hit is not None:
                yield hit
                yield from _field_variants(hit, sorted(rule.fields))

    bad, hits = _disagreements(ruleset.rules, variants())
    assert bad == []
    assert hits > 0


def test_cli_names_rules_left_to_rule_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    path = write(tmp_path, "r.yaml", """
- rule: plain
  condition: proc.name == "x"
  output: o
  priority: INFO
- rule: arithmetic
  condition: "user.uid + 1 == 1"
  output: o
  priority: INFO
""")
    assert main(["rules", "validate", "--no-default-rules", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 evaluated by rule-engine, not compiled: 'arithmetic' (AddExpression)" in out
    assert main(["rules", "list", "--json", "--no-default-rules", "--rules", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["evaluator"] for r in rows] == ["compiled", "rule-engine (AddExpression)"]


def test_referenced_fields_are_what_conditions_outputs_and_alerts_read(tmp_path: Path) -> None:
    rs = load(sources(write(tmp_path, "r.yaml", """
- rule: a
  condition: evt.type == "execve" and [x for x in (proc.aname ?? []) if x == "y"] and fd.num >= 0
  output: o %evt.arg.flags %proc.argv[1]
  priority: INFO
- rule: switched off
  condition: evt.type == "execve" and cgroup.id == 1
  output: o %group.gid
  priority: INFO
  enabled: false
""")))
    got = rs.referenced_fields()
    assert {"evt.type", "proc.aname", "fd.num", "evt.arg.flags", "proc.argv"} <= got
    alert_reads = {"proc.pid", "proc.exepath", "user.name", "evt.time", "proc.apid", "proc.aexepath"}
    assert alert_reads <= got
    assert not {"cgroup.id", "group.gid", "evt.cpu", "proc.pcmdline"} & got  # disabled, or unused
    default = load(sources(rules_dir() / "default.yaml")).referenced_fields()
    assert len(default) < len(catalog.FIELDS) and "fd.nameraw" in default


class _Given(ast.ExpressionBase):  # type: ignore[misc]  # rule-engine's base is untyped
    """A value already evaluated, standing in for a node's operand."""

    __slots__ = ("result_type", "value")

    def __init__(self, context: Any, value: Any, result_type: Any) -> None:
        self.context = context  # type: ignore[misc]  # a slot of the base class
        self.value = value
        self.result_type = result_type

    def evaluate(self, thing: Any) -> Any:
        return self.value


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        for name in _attr_names(n):
            child = getattr(n, name, None)
            if isinstance(child, (ast.ExpressionBase, ast.Statement)):
                stack.append(child)
            elif isinstance(child, (tuple, list)):
                stack.extend(c for c in child if isinstance(c, ast.ExpressionBase))


def _outcome(fn: Callable[[], Any]) -> str:
    try:
        return f"value {fn()!r}"
    except Exception as exc:
        return f"error {type(exc).__name__}"


def test_attribute_step_is_rule_engines_on_every_value(rulesets: dict[str, RuleSet]) -> None:
    # The rule-level tests cannot tell one error from another (a NullIsFalse above turns
    # both into False): here each attribute node of every rule is run by rule-engine and
    # by get_attribute on the same evaluated object, values and error classes compared.
    nodes = [n for label in LABELS for rule in rulesets[label].rules
             for n in _walk(rule.engine_matches.__self__.statement)  # type: ignore[union-attr]
             if type(n) is ast.GetAttributeExpression]
    assert {n.name for n in nodes} >= {"as_lower", "as_upper", "length", "to_int"}
    assert {n.safe for n in nodes} == {True, False}
    objects = [*WRONG_TYPES, "BaSh", "İSTANBUL", "ß", {"length": 3}, {"as_lower": "x"}, [{"a": 1}]]
    objects += [coerce_value(v, verify_type=False) for v in objects if not isinstance(v, dict)]
    ev = exec_event()
    compared = 0
    for node in nodes:
        step = get_attribute(node)
        for obj in objects:
            shadow = copy.copy(node)
            shadow.object = _Given(node.context, obj, node.object.result_type)
            want = _outcome(lambda: shadow.evaluate(ev))  # noqa: B023  # called at once
            got = _outcome(lambda: step(obj, ev))  # noqa: B023
            assert got == want, (node.name, node.safe, obj)
            compared += want.startswith("value")
    assert compared > len(nodes)  # not only errors


def _index_disagreements(ruleset: RuleSet, events: Iterable[dict[str, Any]]) -> tuple[list[str], int]:
    """RuleSet.matching (the type index, each rule compiled again per type and facets)
    against every enabled rule's own compiled condition, in definition order. Those are
    held to rule-engine's verdicts above (and are twenty times faster to run)."""
    bad: list[str] = []
    hits = 0
    enabled = [r for r in ruleset.rules if r.enabled]
    for ev in events:
        verdicts = [(r, verdict(r.matches, ev)) for r in enabled]
        want = [r.name for r, v in verdicts if v is True]
        # A rule that raises is counted as an error and does not match: the index must
        # count the same errors (a fold may not drop a side that raises).
        want_errors = [r.name for r, v in verdicts if isinstance(v, str)]
        errors_before = [r.stats.errors for r in enabled]
        got = [r.name for r in ruleset.matching(ev)]
        got_errors = [r.name for r, n in zip(enabled, errors_before, strict=True) if r.stats.errors > n]
        hits += len(want)
        if (got, got_errors) != (want, want_errors) and len(bad) < 10:
            bad.append(f"each rule {want} (errors {want_errors}), index {got} (errors {got_errors}) on {ev}")
    return bad, hits


# random events per rule, and every how many recorded ones: every event goes through
# every rule, and the extra rules are many (and slow on odd values by design)
@pytest.mark.parametrize(("label", "per_rule", "stride"), [
    ("default", 20, 1), ("exec fixture", 20, 1), ("extra", 1, 4), ("falco stable", 20, 1),
    ("falco extra", 20, 1)])
def test_specialised_index_gives_each_rules_matches(rulesets: dict[str, RuleSet], label: str,
                                                     per_rule: int, stride: int) -> None:
    ruleset = rulesets[label]
    base = _base_events()[::stride]
    near = HIT_EVENTS + list(_random_events(ruleset, per_rule * len(ruleset.rules), seed=29))

    def events() -> Iterator[dict[str, Any]]:
        # What the index adds to the compiled rules (test_recorded_and_synthesised_events
        # covers every field) is folding evt.type and the facets: those are varied here.
        for ev in base + near:
            yield ev
            # Fields whose wrong type makes a side raise beside a folded test (EXTRA).
            yield from _field_variants(ev, ["proc.argv"])
            # The facets missing, null, of a wrong type, and each of true and false.
            yield from _field_variants(ev, ["evt.failed", "evt.is_open_read", "evt.is_open_write"])
            for value in (True, False, 1, 0):
                yield dict(ev, **{"evt.failed": value})
                yield dict(ev, **{"evt.is_open_write": value, "evt.is_open_read": not value})

    bad, hits = _index_disagreements(ruleset, events())
    assert bad == []
    assert hits > 0


def test_index_leaves_out_rules_an_events_type_and_facets_rule_out(rulesets: dict[str, RuleSet]) -> None:
    group = rulesets["default"]._by_type["openat"]
    assert "evt.is_open_write" in group.facets
    read = {"evt.type": "openat", "evt.is_open_read": True, "evt.is_open_write": False, "evt.failed": False}
    names = [r.name for r, _ in group.for_event(read)]
    assert "Read sensitive file untrusted" in names and "Write below etc" not in names
    assert len(names) < len(group.rules) / 2, names
    # A facet holding what no specialisation was made for: the type's own rules.
    odd = dict(read, **{"evt.is_open_write": "yes"})
    assert [r.name for r, _ in group.for_event(odd)] == [r.name for r, _ in group.typed()]
    assert "Write below etc" in [r.name for r, _ in group.typed()]
