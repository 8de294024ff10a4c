"""The open path filter's analysis of rules: what prefixes, or no filter at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor import paths
from monitor.events.catalog import FIELD_TYPES
from monitor.kernel.filters import PROC_MEM, bpf_commands, open_path_prefixes
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


def test_dotted_paths_need_no_prefix(tmp_path: Path) -> None:
    # The kernel never judges a path with "/." in it (as given or resolved) by prefix.
    assert _prefixes(tmp_path, 'evt.type == "openat" and "/.ssh/" in fd.name') == frozenset()
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.filename == ".bash_history"') == frozenset()
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.filename in [".bashrc", ".zshrc"]') == set()
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.filename startswith "."') == frozenset()
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.name =~~ "/\\\\.aws/"') == frozenset()
    # Not dotted: no bound at all.
    assert _prefixes(tmp_path, 'evt.type == "openat" and "/ssh/" in fd.name') is None
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.filename in [".bashrc", "profile"]') is None
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.filename == "authorized_keys"') is None
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.name =~~ "aws/"') is None


def test_the_proc_mem_pattern_is_its_own_need(tmp_path: Path) -> None:
    mem = 'evt.type == "openat" and fd.name =~ "^/proc/[0-9]+/(mem|maps)$"'
    assert _prefixes(tmp_path, mem) == {PROC_MEM}
    # Any other /proc pattern is what it always was: a plain prefix, or no bound at all.
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.name startswith "/proc/"') == {"/proc/"}
    assert _prefixes(tmp_path, 'evt.type == "openat" and fd.name =~ "^/proc/[0-9]+/environ$"') is None


# What README promises: with the default rules the kernel keeps opens of these trees only
# (and of dotted and relative paths, which it never judges by prefix).
DEFAULT_OUTERMOST = {
    "/etc/", "/var/log/", "/var/spool/cron/", "/var/spool/anacron/", "/var/spool/at/",
    "/lib/systemd/system/", "/lib/systemd/user/", "/usr/lib/systemd/system/",
    "/usr/lib/systemd/user/", "/usr/local/lib/systemd/system/", "/run/systemd/system/",
    "/run/systemd/user/", "/lib/security/", "/lib64/security/", "/lib/x86_64-linux-gnu/security/",
    "/usr/lib/security/", "/usr/lib64/security/", "/usr/lib/x86_64-linux-gnu/security/",
    "/usr/lib/aarch64-linux-gnu/security/",
    PROC_MEM,  # not a trie entry: the kernel's own /proc/<pid>/mem|maps switch
}


def test_the_default_ruleset_keeps_opens_of_a_few_trees_only(tmp_path: Path) -> None:
    """Prefixes inside another (/etc/sudoers under /etc/) change nothing in an LPM trie, so
    the promise is about the outermost ones; the cgroup v1 release_agent files are exact."""
    rs = load(RuleSources(default_dir=paths.rules_dir(), fields=FIELD_TYPES))
    got = open_path_prefixes(rs.rules_with_action("alert"), rs.field_of)
    assert got is not None
    outermost = {p for p in got if not any(q != p and p.startswith(q) for q in got)}
    agents = {p for p in outermost if p.startswith("/sys/fs/cgroup/")}
    assert agents and all(p.endswith("/release_agent") for p in agents)
    assert outermost - agents == DEFAULT_OUTERMOST


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
