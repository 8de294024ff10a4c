"""The open path filter's analysis of rules: what prefixes, or no filter at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor import paths
from monitor.events.catalog import FIELD_TYPES
from monitor.kernel.filters import bpf_commands, open_path_prefixes
from monitor.rules import RuleSources, load


def _ruleset(tmp_path: Path, *conditions: str) -> Any:
    text = "".join(
        f"- rule: r{i}\n  desc: d\n  condition: >\n    {c}\n  output: o\n  priority: INFO\n"
        for i, c in enumerate(conditions)
    )
    f = tmp_path / "r.yaml"
    f.write_text(text)
    return load(RuleSources(paths=(f,), defaults=False, system_dir=None, fields=FIELD_TYPES))


def _prefixes(tmp_path: Path, *conditions: str) -> frozenset[str] | None:
    rs = _ruleset(tmp_path, *conditions)
    return open_path_prefixes(rs.rules_with_action("alert"), rs.field_of)


def test_prefix_equality_membership_and_directory(tmp_path: Path) -> None:
    assert _prefixes(
        tmp_path,
        'evt.type == "openat" and fd.name startswith "/etc/"',
        'evt.type in ["open", "openat"] and fd.name == "/root/.bashrc"',
        'evt.type == "openat2" and fd.name in ["/a/b", "/c/d"]',
        'evt.type == "openat" and fd.directory == "/var/spool/cron"',
    ) == {"/etc/", "/root/.bashrc", "/a/b", "/c/d", "/var/spool/cron/"}


def test_or_unites_and_keeps_the_narrower_side(tmp_path: Path) -> None:
    assert _prefixes(
        tmp_path,
        'evt.type == "openat" and (fd.name startswith "/etc/" or fd.name startswith "/boot/")'
        ' and proc.name != "x"',
    ) == {"/etc/", "/boot/"}


def test_an_open_rule_without_a_path_constraint_disables_the_filter(tmp_path: Path) -> None:
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.name startswith "/etc/"',
                     'evt.type == "openat" and proc.name == "nc"') is None
    # One side of an `or` unconstrained is unconstrained.
    assert _prefixes(tmp_path, 'evt.type == "openat" and (fd.name startswith "/etc/" or '
                               'proc.name == "nc")') is None
    # `not` says nothing about where the path is.
    assert _prefixes(tmp_path, 'evt.type == "openat" and not fd.name startswith "/tmp/"') is None
    # A pattern that is not a plain prefix.
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.name endswith ".pem"') is None
    # A rule with no evt.type constraint sees opens too.
    assert _prefixes(tmp_path, 'proc.name == "nc"') is None


def test_rules_that_cannot_see_opens_do_not_matter(tmp_path: Path) -> None:
    assert _prefixes(tmp_path, 'evt.type == "execve" and proc.name == "nc"',
                     'evt.type == "openat" and fd.name startswith "/etc/"') == {"/etc/"}


def test_traversal_and_other_syscalls_fields_need_no_prefix(tmp_path: Path) -> None:
    # "../" paths are never canonical: the kernel passes them whatever the prefixes.
    assert _prefixes(tmp_path, 'evt.type == "openat" and "../" in fd.nameraw') == frozenset()
    # evt.arg.oldpath is a rename field: false on every open, so this branch needs nothing.
    assert _prefixes(tmp_path, 'evt.type in ["openat", "rename"] and (fd.name startswith "/etc/" '
                               'or evt.arg.oldpath startswith "/etc/")') == {"/etc/"}


def test_startswith_a_list(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(
        "- list: boot_dirs\n  items: [/etc/, /boot/]\n"
        "- rule: r\n  desc: d\n  condition: evt.type == \"openat\" and fd.name startswith boot_dirs\n"
        "  output: o\n  priority: INFO\n"
    )
    rs = load(RuleSources(paths=(f,), defaults=False, system_dir=None, fields=FIELD_TYPES))
    assert open_path_prefixes(rs.rules_with_action("alert"), rs.field_of) == {"/etc/", "/boot/"}


def test_the_default_ruleset_keeps_opens_under_etc_and_var_log_only(tmp_path: Path) -> None:
    """What README promises: with the default rules the kernel keeps opens under /etc/ and
    /var/log/. Prefixes inside another (/etc/sudoers under /etc/) change nothing in an LPM
    trie, so the promise is about the outermost ones."""
    rs = load(RuleSources(default_dir=paths.rules_dir(), fields=FIELD_TYPES))
    got = open_path_prefixes(rs.rules_with_action("alert"), rs.field_of)
    assert got is not None
    outermost = {p for p in got if not any(q != p and p.startswith(q) for q in got)}
    assert outermost == {"/etc/", "/var/log/"}


def _bpf_cmds(tmp_path: Path, *conditions: str) -> frozenset[str] | None:
    rs = _ruleset(tmp_path, *conditions)
    return bpf_commands(rs.rules_with_action("alert"), rs.field_of)


def test_bpf_commands_from_rules(tmp_path: Path) -> None:
    assert _bpf_cmds(tmp_path, 'evt.type == "bpf" and evt.arg.cmd == "BPF_PROG_LOAD"') == {"BPF_PROG_LOAD"}
    assert _bpf_cmds(tmp_path, 'evt.type == "bpf" and evt.arg.cmd in ["BPF_PROG_LOAD", "BPF_OBJ_PIN"]',
                     'evt.type == "execve"') == {"BPF_PROG_LOAD", "BPF_OBJ_PIN"}
    assert _bpf_cmds(tmp_path, 'evt.type == "bpf" and proc.name == "x"') is None
    assert _bpf_cmds(tmp_path, 'evt.type == "bpf" and (evt.arg.cmd == "BPF_PROG_LOAD" or '
                               'proc.name == "x")') is None
    assert _bpf_cmds(tmp_path, 'evt.type == "execve"') == frozenset()
    rs = load(RuleSources(default_dir=paths.rules_dir(), fields=FIELD_TYPES))
    assert bpf_commands(rs.rules_with_action("alert"), rs.field_of) == {"BPF_PROG_LOAD"}
