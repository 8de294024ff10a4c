"""One exit-status convention across commands, global options anywhere, --version,
`rules validate` with no path, aligned `rules list` columns (README: "Exit status")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import cli
from monitor.version import version
from tests.monitor_proc import REPO


def ringwatch(*args: str, rules_d: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RINGWATCH_RULES_D": str(rules_d or "/nonexistent/rules.d")}
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_version() -> None:
    res = ringwatch("--version")
    assert res.returncode == 0 and res.stdout == f"ringwatch {version()}\n"
    assert version()[0].isdigit()


@pytest.mark.parametrize("argv", [
    ["--log-json", "--log-level", "debug", "stats"],
    ["stats", "--log-json", "--log-level", "debug"],
    ["--log-json", "stats", "--log-level", "debug"],
    ["rules", "fields", "--log-json", "--log-level", "debug"],
    ["rules", "list", "--log-json", "--log-level", "debug"],
    ["tail", "--log-json", "--log-level", "debug"],
])
def test_log_options_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert args.log_json is True and args.log_level == "debug"


@pytest.mark.parametrize("argv", [
    ["--control-socket", "/run/x.sock", "--config", "/etc/x.yaml", "stats"],
    ["stats", "--control-socket", "/run/x.sock", "--config", "/etc/x.yaml"],
    ["--config", "/etc/x.yaml", "run", "--control-socket", "/run/x.sock"],
    ["--control-socket", "/run/x.sock", "tail", "--config", "/etc/x.yaml"],
    ["reload", "--config", "/etc/x.yaml", "--control-socket", "/run/x.sock"],
])
def test_config_and_socket_before_or_after(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert args.control_socket == "/run/x.sock" and args.config == Path("/etc/x.yaml")


def test_defaults_when_given_nowhere() -> None:
    args = cli.build_parser().parse_args(["stats"])
    assert (args.log_json, args.log_level, args.config, args.control_socket) == (False, "info", None, None)


def test_exit_status_convention(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text('- rule: G\n  condition: evt.type == "execve"\n  output: "g"\n  priority: NOTICE\n')
    bad = tmp_path / "bad.yaml"
    bad.write_text('- rule: B\n  condition: evt.type == "execve" and nosuch.field == 1\n  output: "b"\n'
                   "  priority: NOTICE\n")
    none = str(tmp_path / "none.sock")
    cases = [
        (0, ["rules", "validate", "--no-default-rules", str(good)]),
        (1, ["rules", "validate", "--no-default-rules", str(bad)]),       # a finding
        (2, ["rules", "validate", str(tmp_path / "missing.yaml")]),       # operator error
        (2, ["rules", "list", "--rules", str(bad)]),                      # cannot list what does not load
        (2, ["stats", "--control-socket", none]),
        (2, ["maps", "--control-socket", none]),
        (2, ["reload", "--control-socket", none]),
        (2, ["tail", "--control-socket", none]),
        (2, ["rules", "list", "--control-socket", none]),
        (2, ["--config", str(tmp_path / "missing.yaml"), "stats"]),
        (2, ["replay", str(tmp_path / "missing.jsonl")]),
        (2, ["nosuchcommand"]),                                          # usage (argparse)
        (2, ["tail", "--pid", "notanumber"]),
    ]
    for want, argv in cases:
        res = ringwatch(*argv)
        assert res.returncode == want, f"{argv}: exit {res.returncode}, wanted {want}\n{res.stderr}"
        assert "Traceback" not in res.stderr, argv


def test_validate_without_path_checks_what_the_service_loads(tmp_path: Path) -> None:
    rules_d = tmp_path / "rules.d"
    rules_d.mkdir()
    ok = ringwatch("rules", "validate", rules_d=rules_d)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ") and "from 1 file(s)" in ok.stdout  # the packaged default
    (rules_d / "local.yaml").write_text('- rule: L\n  condition: evt.type == "execve" and nope == 1\n'
                                        '  output: "l"\n  priority: NOTICE\n')
    bad = ringwatch("rules", "validate", rules_d=rules_d)
    assert bad.returncode == 1 and "local.yaml:2:" in bad.stderr, bad.stderr


def test_rules_list_columns_align_with_long_names(tmp_path: Path) -> None:
    long_name = "A rule whose name is much longer than forty characters, to test alignment"
    rules = tmp_path / "r.yaml"
    rules.write_text(f'- rule: {long_name}\n  condition: evt.type == "execve"\n'
                     '  output: "x"\n  priority: NOTICE\n'
                     '- rule: Short\n  condition: evt.type == "openat"\n'
                     '  output: "y"\n  priority: CRITICAL\n')
    res = ringwatch("rules", "list", "--no-default-rules", "--rules", str(rules))
    assert res.returncode == 0, res.stderr
    head, *lines = res.stdout.splitlines()
    col = head.index("PRIORITY")
    assert [ln[col:].split()[0] for ln in lines] == ["NOTICE", "CRITICAL"]
    assert lines[0].startswith(long_name + "  ")
