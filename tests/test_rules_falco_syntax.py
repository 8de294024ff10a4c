"""Falco's condition language: parsed as libsinsp parses it, lowered, evaluated on events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.rules.falco.ast import (
    And,
    BinaryCheck,
    FieldRef,
    Ident,
    ListValue,
    Not,
    Or,
    Transform,
    UnaryCheck,
    Value,
)
from monitor.rules.falco.parser import FalcoSyntaxError, parse
from tests.rules_util import load_text, problems_of

MARK = "- ringwatch: {syntax: falco}\n"


# --- the parser ---------------------------------------------------------------------


def test_precedence_and_not() -> None:
    tree = parse("a or b and not c")
    assert isinstance(tree, Or)
    assert tree.children[0] == Ident("a", 0)
    inner = tree.children[1]
    assert isinstance(inner, And) and inner.children[1] == Not(Ident("c", 15), 11)


def test_not_paren_and_double_not() -> None:
    assert parse("not(a)") == Not(Ident("a", 4), 0)
    assert parse("not not a") == Ident("a", 8)


def test_lists_bare_quoted_and_brackets() -> None:
    tree = parse('proc.pname in (runc:[0:PARENT], "a b", \'c\', x)')
    assert isinstance(tree, BinaryCheck) and isinstance(tree.right, ListValue)
    assert [(v.text, v.quoted) for v in tree.right.items] == [
        ("runc:[0:PARENT]", False), ("a b", True), ("c", True), ("x", False)]
    square = parse("proc.name in [a, b]")
    assert isinstance(square, BinaryCheck) and isinstance(square.right, ListValue)
    assert [v.text for v in square.right.items] == ["a", "b"]
    empty = parse("proc.name in ()")
    assert isinstance(empty, BinaryCheck) and empty.right == ListValue((), 13)


def test_operators_without_blanks_and_values() -> None:
    tree = parse("evt.is_open_write=true and fd.typechar='f' and fd.num>=0 and proc.name!=\"sshd\"")
    assert isinstance(tree, And)
    ops = [(c.left.name, c.op, c.right.text) for c in tree.children  # type: ignore[union-attr]
           if isinstance(c, BinaryCheck) and isinstance(c.left, FieldRef) and isinstance(c.right, Value)]
    assert ops == [("evt.is_open_write", "=", "true"), ("fd.typechar", "=", "f"), ("fd.num", ">=", "0"),
                   ("proc.name", "!=", "sshd")]


def test_indexed_fields_transformers_val_and_exists() -> None:
    want = BinaryCheck(FieldRef("proc.aname", "2", 0), "=", Value("sshd", False, 14), 0)
    assert parse("proc.aname[2]=sshd") == want
    assert parse("evt.arg[0] exists") == UnaryCheck(FieldRef("evt.arg", "0", 0), "exists", 0)
    tree = parse("tolower(proc.name) = bash and proc.name != val(proc.pname)")
    assert isinstance(tree, And)
    first, second = tree.children
    assert isinstance(first, BinaryCheck)
    assert first.left == Transform("tolower", (FieldRef("proc.name", None, 8),), 0)
    assert isinstance(second, BinaryCheck) and isinstance(second.right, Transform)
    assert second.right.name == "val"


def test_quoted_escapes() -> None:
    tree = parse(r'proc.cmdline = "a \"b\" c\n"')
    assert isinstance(tree, BinaryCheck) and tree.right == Value('a "b" c\n', True, 15)


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        ("a and", 2, "expected blank or '(' after 'and'"),
        ("(a or b", 7, "expected a ')' token"),
        ("proc.name bogus x", 10, "expected a valid check operator"),
        ("proc.name in", 12, "expected a list, an identifier"),
        ("proc.name = 'open", 12, "unterminated quoted string"),
        ("a b", 2, "unexpected token after 'a', expecting 'or', 'and'"),
    ],
)
def test_syntax_errors_say_where(text: str, pos: int, message: str) -> None:
    with pytest.raises(FalcoSyntaxError) as err:
        parse(text)
    assert err.value.pos == pos and err.value.message.startswith(message)


# --- lowered and evaluated ----------------------------------------------------------

# Events as the pipeline makes them: Falco's field meanings (proc.exe argv[0], proc.aname[0]
# the process itself, evt.res text and evt.rawres the number).
EXEC = {"evt.type": "execve", "proc.name": "bash", "proc.pname": "sshd", "proc.exe": "-bash",
        "proc.exepath": "/usr/bin/bash", "evt.arg.filename": "/usr/bin/bash",
        "proc.argv": ["-bash", "-c", "id"], "proc.args": "-c id", "proc.cmdline": "bash -c id",
        "proc.aname": ["bash", "sshd", "systemd"], "proc.apid": [200, 100, 1], "proc.pid": 200,
        "user.uid": 0, "evt.res": "SUCCESS", "evt.rawres": 0, "evt.failed": False, "evt.errno": ""}
OPEN = {"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow", "fd.directory": "/etc",
        "fd.filename": "shadow", "fd.type": "file", "fd.num": 3, "evt.is_open_read": True,
        "evt.arg.flags": "O_RDONLY|O_CLOEXEC", "evt.res": "SUCCESS", "evt.rawres": 3, "evt.failed": False,
        "evt.errno": "", "proc.aname": ["cat", "bash", "sshd"]}
FAILED_OPEN = {**OPEN, "fd.num": -1, "evt.res": "EACCES", "evt.rawres": -13, "evt.failed": True,
               "evt.errno": "EACCES"}


def matcher(tmp_path: Path, condition: str, lists: str = "", macros: str = "") -> Any:
    text = (MARK + lists + macros + "- rule: r\n  condition: >\n    " + condition
            + "\n  output: o\n  priority: INFO\n  warn_evttypes: false\n")
    rs = load_text(tmp_path, text)
    assert [r.name for r in rs.rules] == ["r"], rs.skipped
    return rs.rules[0].matches


CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("evt.type = execve and proc.name = bash", EXEC, True),
    ("evt.type == execve and proc.name != bash", EXEC, False),
    ("evt.type in (execve, execveat) and not proc.pname in (nginx, httpd)", EXEC, True),
    ("proc.name in (shell_binaries)", EXEC, True),
    ("proc.name in (more_shells)", EXEC, True),  # a list whose items name a list
    ("proc.name in shell_binaries", EXEC, True),
    ("proc.cmdline contains \"-c i\"", EXEC, True),
    ("proc.cmdline icontains \"BASH -C\"", EXEC, True),
    ("proc.cmdline startswith \"bash \"", EXEC, True),
    ("proc.exepath endswith /bash", EXEC, True),
    ("proc.exepath endswith bas", EXEC, False),
    ("proc.exepath glob '/usr/*/ba?h'", EXEC, True),
    ("proc.exepath glob '/usr/*/zsh'", EXEC, False),
    ("proc.exepath regex '/usr/bin/[a-z]+'", EXEC, True),
    ("proc.exepath regex 'bin/[a-z]+'", EXEC, False),  # the whole value must match
    ("proc.exepath pmatch (/usr/bin, /opt)", EXEC, True),
    ("proc.exepath pmatch (/usr/bi)", EXEC, False),  # a path prefix, not a text prefix
    ("proc.exepath bcontains 2f62617368", EXEC, True),  # "/bash" in hex
    ("proc.exepath bstartswith 2f757372", EXEC, True),  # "/usr"
    ("proc.exe = -bash", EXEC, True),  # Falco's proc.exe is argv[0]; proc.exepath the path
    ("proc.pid > 100 and proc.pid <= 200 and user.uid < 1 and proc.pid >= 0x10", EXEC, True),
    ("proc.pname exists and not proc.ppid exists", EXEC, True),
    ("tolower(proc.name) = bash and toupper(proc.name) = BASH", EXEC, True),
    ("proc.pname = val(proc.aname[1])", EXEC, True),
    # Falco's ancestors: [0] is the process itself, [1] the parent, unindexed: any ancestor.
    ("proc.aname[0] = bash and proc.aname[1] = sshd and proc.aname[2] = systemd", EXEC, True),
    ("proc.aname = systemd", EXEC, True),
    ("proc.aname in (systemd, init)", EXEC, True),
    ("proc.aname = bash", EXEC, False),  # the process itself is not its own ancestor
    ("proc.apid[1] = 100", EXEC, True),
    ("evt.arg.flags contains O_RDONLY and fd.typechar = f", OPEN, True),
    ("fd.name in (sensitive_file_names) and evt.res = SUCCESS and evt.rawres = 3", OPEN, True),
    ("evt.res startswith E and evt.rawres < 0 and fd.num = -1", FAILED_OPEN, True),
    ("evt.res = EACCES", FAILED_OPEN, True),
    ("evt.res = SUCCESS", FAILED_OPEN, False),
    ("fd.name startswith /etc and is_sensitive", OPEN, True),
    ("proc.name in ()", EXEC, False),
    ("evt.num = 0", EXEC, False),  # Falco numbers events from 1: its "never" idiom
    ("evt.dir = < and not evt.dir = >", EXEC, True),  # one record per syscall, at its exit
    ("fd.name intersects (/etc/shadow, /x)", OPEN, True),
    ("basename(fd.name) = shadow", OPEN, True),
    ("len(proc.name) = 4", EXEC, True),
    ("proc.cmdline startswith anyof (zsh, \"bash -\")", EXEC, True),
    ("proc.cmdline contains allof (bash, \"-c\", id)", EXEC, True),
    ("proc.cmdline contains allof (bash, nope)", EXEC, False),
    ("proc.cmdline contains oneof (bash, nope)", EXEC, True),
    ("proc.cmdline contains oneof (bash, id)", EXEC, False),  # both: not exactly one
    ("proc.name = anyof (shell_binaries)", EXEC, True),
    ("proc.name = anyof", EXEC, False),  # no list follows: the bare string "anyof"
]
LISTS = """- list: shell_binaries
  items: [bash, sh]
- list: more_shells
  items: [zsh, shell_binaries]
- list: sensitive_file_names
  items: [/etc/shadow, '"/etc/sudoers"']
"""
MACROS = """- macro: is_sensitive
  condition: (fd.name in (sensitive_file_names) or fd.directory in (/etc/sudoers.d))
"""


@pytest.mark.parametrize(("condition", "event", "expected"), CASES, ids=[c[0] for c in CASES])
def test_lowered_condition_evaluates(tmp_path: Path, condition: str, event: dict[str, Any],
                                     expected: bool) -> None:
    assert matcher(tmp_path, condition, LISTS, MACROS)(event) is expected


def test_missing_fields_are_false_not_errors(tmp_path: Path) -> None:
    m = matcher(tmp_path, "proc.pname = sshd or proc.aname = sshd or proc.aname[3] = x or evt.res = SUCCESS")
    assert m({"evt.type": "fork"}) is False


def test_endswith_is_not_fooled_by_a_newline(tmp_path: Path) -> None:
    m = matcher(tmp_path, "proc.cmdline endswith .aws/credentials")
    assert m({"proc.cmdline": "find .aws/credentials\n"}) is False
    assert m({"proc.cmdline": "find x\n.aws/credentials"}) is True


def test_falco_and_ringwatch_files_share_macros(tmp_path: Path) -> None:
    """A ringwatch-syntax rule may use a Falco-syntax macro and the other way round."""
    (tmp_path / "a_falco.yaml").write_text(
        MARK + "- macro: falco_shell\n  condition: proc.name in (bash, sh)\n"
        "- rule: f\n  condition: evt.type = execve and rw_root\n  output: o\n  priority: INFO\n")
    (tmp_path / "b_rw.yaml").write_text(
        "- macro: rw_root\n  condition: user.uid == 0\n"
        "- rule: w\n  condition: evt.type == \"execve\" and falco_shell\n  output: o\n  priority: INFO\n")
    from monitor.rules import load
    from tests.rules_util import sources

    rs = load(sources(tmp_path))
    assert [(r.name, r.matches(EXEC)) for r in rs.rules] == [("f", True), ("w", True)]


def test_the_syntax_is_chosen_per_file(tmp_path: Path) -> None:
    falco = ("- rule: r\n  condition: evt.type = execve and proc.name in (bash)\n"
             "  output: o\n  priority: INFO\n")
    # required_engine_version: Falco's file
    rs = load_text(tmp_path, "- required_engine_version: 0.57.0\n" + falco)
    assert rs.rules[0].matches(EXEC)
    # no marker: ringwatch's syntax, where `=` is an error
    msg = str(problems_of(tmp_path, falco)[0])
    assert "unknown name 'execve': a string value needs quotes" in msg
    # the explicit marker wins over required_engine_version
    marked = "- required_engine_version: 0.57.0\n- ringwatch: {syntax: ringwatch}\n" + falco
    msg = str(problems_of(tmp_path, marked)[0])
    assert "unknown name 'execve'" in msg
    bad = problems_of(tmp_path, "- ringwatch: {syntax: cobol}\n" + falco)
    assert "ringwatch: expected {syntax: falco} or {syntax: ringwatch}" in str(bad[0])
