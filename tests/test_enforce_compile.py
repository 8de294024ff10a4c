"""Deny rules -> kernel map contents, pure logic: translation from real loaded rules
(the rules package's parser and AST), the covering computation, and every refusal."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from monitor.enforce.plan import PlanError, build, path_key
from monitor.enforce.rules import deny_specs
from monitor.enforce.spec import DenySpec, Hook, Mode, UidOp
from monitor.enforce.translate import TranslateError
from tests.rules_util import load_text


def rule(name: str, cond: str, action: str = "deny") -> str:
    cond = cond.replace("'", "''")
    return (f"- rule: {name}\n  desc: t\n  condition: '{cond}'\n  output: o\n"
            f"  priority: WARNING\n  action: {action}\n")


def specs(tmp_path: Path, *rules: str, mode: str = "enforce") -> list[DenySpec]:
    return deny_specs(load_text(tmp_path, "\n".join(rules)), mode)[0]


def refusal(tmp_path: Path, cond: str) -> str:
    with pytest.raises(TranslateError) as err:
        specs(tmp_path, rule("r1", cond))
    return str(err.value)


def test_exec_exact_and_prefix(tmp_path: Path) -> None:
    (s,) = specs(tmp_path, rule(
        "x", 'evt.type in ["execve", "execveat"] and (proc.exepath == "/tmp/evil" '
             'or proc.exepath startswith "/dev/shm/")'))
    assert s == DenySpec("x", Hook.EXEC, Mode.ENFORCE, paths=("/tmp/evil",), prefixes=("/dev/shm/",))


def test_open_with_exceptions_uid_and_cgroup(tmp_path: Path) -> None:
    (s,) = specs(tmp_path, rule(
        "o", 'evt.type == "openat" and fd.name startswith "/etc/shadow" and user.uid != 0 '
             'and cgroup.id == 77 and not proc.exepath in ["/usr/sbin/sshd", "/usr/bin/passwd"]'))
    assert s.hook is Hook.OPEN and s.prefixes == ("/etc/shadow",)
    assert s.uid == (UidOp.NE, 0) and s.cgroup_id == 77
    assert s.except_exes == ("/usr/sbin/sshd", "/usr/bin/passwd")


def test_rule_exceptions_section_becomes_kernel_exceptions(tmp_path: Path) -> None:
    text = rule("o", 'evt.type == "open" and fd.name == "/etc/passwd"') + (
        "  exceptions:\n    - name: trusted\n      fields: [proc.exepath]\n"
        "      values: [[/usr/bin/id]]\n")
    (s,) = specs(tmp_path, text)
    assert s.except_exes == ("/usr/bin/id",)


def test_connect_networks_and_port(tmp_path: Path) -> None:
    (s,) = specs(tmp_path, rule(
        "n", 'evt.type == "connect" and fd.snet in ["10.0.0.0/8", "fd00::/8"] and fd.sport == 443'))
    assert s.networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert s.port == 443
    (a,) = specs(tmp_path, rule("a", 'evt.type == "connect" and fd.sip == "192.0.2.7"'))
    assert a.networks == (ipaddress.ip_network("192.0.2.7/32"),)
    (r,) = specs(tmp_path, rule("r", 'evt.type == "connect" and fd.rip in ["::1"] and fd.rport == 22'))
    assert r.networks == (ipaddress.ip_network("::1/128"),) and r.port == 22


def test_modes_rule_audit_and_global_audit(tmp_path: Path) -> None:
    deny = rule("d", 'evt.type == "execve" and proc.exepath == "/a"')
    audit = rule("a", 'evt.type == "execve" and proc.exepath == "/b"', action="audit")
    alert = rule("plain", 'evt.type == "execve" and proc.name == "x"', action="alert")
    got = {s.rule: s.mode for s in specs(tmp_path, deny, audit, alert)}
    assert got == {"d": Mode.ENFORCE, "a": Mode.AUDIT}  # alert rules are not enforcement's
    got = {s.rule: s.mode for s in specs(tmp_path, deny, audit, mode="audit")}
    assert got == {"d": Mode.AUDIT, "a": Mode.AUDIT}


@pytest.mark.parametrize(("cond", "why"), [
    ('evt.type == "execve" and proc.name == "evil"', "field proc.name has no kernel check"),
    ('proc.exepath == "/tmp/evil"', "must name the operation with evt.type"),
    # argv[0] is whatever the caller passes: the kernel checks the file, and so must the rule.
    ('evt.type == "execve" and proc.exe == "/tmp/evil"', "proc.exe is argv[0], which the caller chooses"),
    ('evt.type in ["execve", "openat"] and proc.exepath == "/x"', "spans several hooks (exec, open)"),
    ('evt.type == "execve" and (proc.exepath == "/x" or user.uid == 0)', "`or` across"),
    ('evt.type == "execve" and proc.exepath endswith "evil"', "is not a plain prefix"),
    ('evt.type == "execve" and proc.exepath =~ "^/tmp/[a-z]+"', "is not a plain prefix"),
    ('evt.type == "execve" and proc.exepath == "evil"', "absolute paths only"),
    ('evt.type == "execve" and proc.exepath == "/tmp/../evil"', "is not normalised"),
    ('evt.type == "execve" and user.uid == 0', "would deny every exec"),
    ('evt.type == "fork" and proc.exepath == "/x"', "evt.type 'fork' has no LSM hook"),
    ('evt.type == "openat" and fd.name == "/x" and fd.sport == 22', "fd.sport applies to connect only"),
    ('evt.type == "execve" and proc.exepath == "/x" and not proc.exepath in ["/y"]',
     "proc.exepath exceptions apply to open rules only"),
    ('evt.type == "open" and fd.name == "/x" and fd.name != "/y"', "fd.name: a negated test"),
    ('evt.type == "connect" and fd.snet in ["10.0.0.1/8"]', "has host bits set"),
    ('evt.type == "connect" and fd.sip == "10.0.0.0/8"', "does not appear to be an IPv4 or IPv6"),
    ('evt.type == "connect" and fd.name == "/x"', "fd.name cannot be checked on connect"),
    ('evt.type == "execve" and proc.exepath == "/x" and user.uid > 5', "only ==, !=, in"),
    ('evt.type == "execve" and "/x" in proc.exepath', "substring test on proc.exepath"),
])
def test_refusals_name_rule_and_reason(tmp_path: Path, cond: str, why: str) -> None:
    msg = refusal(tmp_path, cond)
    assert "rule 'r1': cannot be enforced in the kernel:" in msg
    assert why in msg
    assert "rules.yaml:1" in msg  # where the rule is


def test_every_bad_rule_is_listed(tmp_path: Path) -> None:
    with pytest.raises(TranslateError) as err:
        specs(tmp_path, rule("b1", 'evt.type == "execve" and proc.name == "a"'),
              rule("ok", 'evt.type == "execve" and proc.exepath == "/a"'),
              rule("b2", 'evt.type == "open" and proc.args == "x" and fd.name == "/a"'))
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and "'b1'" in lines[0] and "'b2'" in lines[1]


def test_longest_key_carries_every_covering_rule() -> None:
    wide = DenySpec("wide", Hook.OPEN, Mode.ENFORCE, prefixes=("/etc/",))
    narrow = DenySpec("narrow", Hook.OPEN, Mode.AUDIT, paths=("/etc/shadow",))
    sibling = DenySpec("sib", Hook.OPEN, Mode.ENFORCE, prefixes=("/etc/ssh/",))
    plan = build([(1, wide), (2, narrow), (3, sibling)])
    assert plan.open_keys == {
        path_key("/etc/", True): (1,),
        path_key("/etc/shadow", False): (1, 2),
        path_key("/etc/ssh/", True): (1, 3),
    }
    # An exact path does not cover a longer one (its key ends in NUL).
    exact = DenySpec("e", Hook.EXEC, Mode.ENFORCE, paths=("/bin/a",))
    longer = DenySpec("l", Hook.EXEC, Mode.ENFORCE, paths=("/bin/ab",))
    p = build([(1, exact), (2, longer)])
    assert p.exec_keys == {path_key("/bin/a", False): (1,), path_key("/bin/ab", False): (2,)}


def test_networks_covering_and_rule_entries() -> None:
    n8 = DenySpec("n8", Hook.CONNECT, Mode.ENFORCE, networks=(ipaddress.ip_network("10.0.0.0/8"),),
                  port=443, uid=(UidOp.EQ, 1000))
    n16 = DenySpec("n16", Hook.CONNECT, Mode.AUDIT, networks=(ipaddress.ip_network("10.1.0.0/16"),))
    other = DenySpec("o", Hook.CONNECT, Mode.ENFORCE, networks=(ipaddress.ip_network("11.0.0.0/8"),))
    plan = build([(5, n8), (6, n16), (7, other)])
    assert plan.v4_keys == {(bytes([10, 0, 0, 0]), 8): (5,), (bytes([10, 1, 0, 0]), 16): (5, 6),
                            (bytes([11, 0, 0, 0]), 8): (7,)}
    e = plan.rules[5]
    assert (e.audit, e.uid_op, e.uid, e.port) == (False, 1, 1000, 443)
    assert plan.rules[6].audit is True


def test_too_many_rules_on_one_key_is_an_error() -> None:
    many = [(i + 1, DenySpec(f"r{i}", Hook.EXEC, Mode.ENFORCE, paths=("/x",))) for i in range(9)]
    with pytest.raises(PlanError, match=r"exec deny map '/x': 9 deny rules apply .*at most 8"):
        build(many)


def test_rules_validate_checks_deny_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(rule("b", 'evt.type == "execve" and proc.name == "a"'))
    good = tmp_path / "good.yaml"
    good.write_text(rule("g", 'evt.type == "execve" and proc.exepath == "/a"'))
    assert main(["rules", "validate", "--no-default-rules", str(good)]) == 0
    assert main(["rules", "validate", "--no-default-rules", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:1: rule 'b': cannot be enforced in the kernel: field proc.name" in err
