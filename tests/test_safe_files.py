"""Rules and config that non-root could have written are refused, like sshd's StrictModes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import config
from monitor.events.catalog import FIELD_TYPES
from monitor.rules import RuleSources, check
from monitor.safefile import UnsafeFileError, unsafe_reason
from tests.monitor_proc import REPO
from tests.rules_util import sources

NOBODY = 65534
RULE = '- rule: r\n  desc: d\n  condition: proc.name == "x"\n  output: o\n  priority: INFO\n'
FIX = ("make it root's and not writable by group or others (chown root, chmod go-w), "
       "or pass --allow-unsafe-files (development only)")


@pytest.fixture()
def rules(tmp_path: Path) -> Path:
    assert os.geteuid() == 0, "these tests chown files"
    d = tmp_path / "rules.d"
    d.mkdir()
    path = d / "r.yaml"
    path.write_text(RULE)
    path.chmod(0o644)
    return path


def messages(src: RuleSources) -> list[str]:
    ruleset, problems = check(src)
    assert ruleset is None
    return [str(p) for p in problems]


def test_a_safe_file_loads(rules: Path) -> None:
    assert check(sources(rules))[1] == []


def test_a_group_writable_file_is_refused(rules: Path) -> None:
    rules.chmod(0o664)
    assert messages(sources(rules)) == [
        f"{rules}:1:1: refusing rules file: {rules} is writable by group or others "
        f"(mode 0664, owner root); {FIX}"
    ]


def test_a_file_owned_by_nobody_is_refused_in_a_directory_too(rules: Path) -> None:
    os.chown(rules, NOBODY, NOBODY)
    assert messages(sources(rules.parent)) == [
        f"{rules}:1:1: refusing rules file: {rules} is not owned by root (mode 0644, owner nobody); {FIX}"
    ]


def test_a_writable_directory_above_is_refused(rules: Path) -> None:
    rules.parent.chmod(0o777)
    expected = f"{rules.parent} is writable by group or others (mode 0777, owner root)"
    assert messages(sources(rules)) == [f"{rules}:1:1: refusing rules file: {expected}; {FIX}"]
    assert messages(sources(rules.parent)) == [
        f"{rules.parent}:1:1: refusing rules directory: {expected}; {FIX}"]


def test_a_sticky_directory_above_is_fine_but_not_as_the_rules_directory(rules: Path) -> None:
    rules.parent.chmod(0o1777)  # like /tmp: nobody can rename root's file away
    assert check(sources(rules))[1] == []
    assert "refusing rules directory" in messages(sources(rules.parent))[0]


def test_a_symlink_in_a_writable_directory_is_refused(rules: Path, tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    link = open_dir / "r.yaml"
    link.symlink_to(rules)
    assert messages(sources(link)) == [
        f"{link}:1:1: refusing rules file: {open_dir} is writable by group or others "
        f"(mode 0777, owner root); {FIX}"
    ]


def test_the_override_loads_anyway(rules: Path) -> None:
    rules.chmod(0o666)
    src = RuleSources(paths=(rules,), defaults=False, allow_unsafe=True, fields=FIELD_TYPES)
    assert check(src)[1] == []


def test_the_users_own_file_is_fine_for_that_user(rules: Path) -> None:
    os.chown(rules, NOBODY, NOBODY)
    assert unsafe_reason(rules, uid=NOBODY) is None
    assert unsafe_reason(rules) is not None  # not for root


def test_an_unsafe_config_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("sensor: {}\n")
    path.chmod(0o646)
    with pytest.raises(UnsafeFileError) as err:
        config.load(path)
    assert str(err.value) == (f"{path}: refusing config: {path} is writable by group or others "
                              f"(mode 0646, owner root); {FIX}")
    assert config.load(path, allow_unsafe=True).source == str(path)


def test_run_and_validate_refuse_in_one_line(rules: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("sensor: {}\n")
    os.chown(cfg, NOBODY, NOBODY)
    res = subprocess.run([sys.executable, "-m", "monitor", "run", "--config", str(cfg), "--duration", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"ringwatch: {cfg}: refusing config: {cfg} is not owned by root (mode 0644, owner nobody); {FIX}"]
    rules.chmod(0o666)
    cmd = [sys.executable, "-m", "monitor", "rules", "validate", "--no-default-rules", str(rules)]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 1 and "refusing rules file" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([*cmd, "--allow-unsafe-files"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0, res.stderr
