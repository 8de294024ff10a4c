"""Output files an attacker can aim (`--record` in /tmp), full disks, garbage replays, and
the one-line errors they give."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import config
from monitor.kernel.sensor import CAPABILITIES
from monitor.sinks import factory
from monitor.sinks.file import FileSinkError, JsonlFileSink
from monitor.sinks.spool import Spool
from tests.monitor_proc import REPO
from tests.rules_util import EXEC_RULES

NOBODY = 65534


def ringwatch(*args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "monitor", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    env = {**os.environ, "RINGWATCH_RULES_D": "/nonexistent/rules.d"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env=env)


@pytest.fixture()
def umask_0() -> object:
    old = os.umask(0)  # the files' modes must not depend on the caller's umask
    yield None
    os.umask(old)


def test_a_new_output_file_is_0600_whatever_the_umask(tmp_path: Path, umask_0: None) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = JsonlFileSink(path, name="alerts-file")
    sink.emit({"a": 1})
    sink.close()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_spool_files_are_0600_whatever_the_umask(tmp_path: Path, umask_0: None) -> None:
    spool = Spool(tmp_path / "spool" / "alerts.db", max_records=10, max_bytes=10_000)
    spool.close()
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "spool").iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "rec.jsonl"
    link.symlink_to(victim)
    with pytest.raises(FileSinkError) as err:
        JsonlFileSink(link, name="record")
    assert str(err.value) == f"{link}: cannot write record: is a symbolic link (not followed)"
    assert victim.read_text() == "precious\n"


def test_a_planted_file_of_another_user_is_not_written(tmp_path: Path) -> None:
    planted = tmp_path / "rec.jsonl"
    planted.write_text("")
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(FileSinkError, match="exists and belongs to uid 65534, not to this user"):
        JsonlFileSink(planted, name="record")


def test_enospc_at_close_is_an_error_and_later_sinks_still_close(tmp_path: Path) -> None:
    cfg = config.from_mapping({"outputs": {"events": {"file": {"path": str(tmp_path / "ev.jsonl")}}}}, "t")
    outs = factory.build(cfg.outputs, factory.Wants(record=Path("/dev/full")))
    assert [s.name for s in outs.events] == ["events-file", "record"]
    for s in outs.events:
        s.emit({"evt.type": "execve"})
    record = outs.events[1]
    outs.events.reverse()  # the record closes first: the events file must still close after
    with pytest.raises(FileSinkError, match="/dev/full: record: the last records were not written: "
                                            "No space left on device"):
        outs.close()
    assert record.stats()["errors"] >= 1
    assert (tmp_path / "ev.jsonl").read_text() == '{"evt.type":"execve"}\n'


@pytest.mark.parametrize(("target", "reason"), [
    ("DIR", "is a directory"),
    ("/proc/x", "No such file or directory"),
    ("/sys/kernel/ringwatch-x", "Permission denied"),
])
def test_run_record_to_a_bad_place_is_one_line(tmp_path: Path, target: str, reason: str) -> None:
    target = str(tmp_path) if target == "DIR" else target
    res = ringwatch("run", "--record", target, "--duration", "0", "--no-default-rules",
                    "--control-socket", f"/run/rw-hostile-{os.getpid()}.sock")
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [f"ringwatch: {target}: cannot write record: {reason}"]


def test_replay_of_nothing_but_garbage_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"not json\n[1, 2]\n\xff\xfe\n")
    res = ringwatch("replay", str(path), "--no-default-rules", "--rules", str(EXEC_RULES))
    assert res.returncode == 1
    assert res.stderr.splitlines()[-1] == f"ringwatch: {path}: no line is an event"
    assert "Traceback" not in res.stderr


def test_replay_with_some_good_lines_still_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('not json\n{"evt.type": "execve"}\n')
    res = ringwatch("replay", str(path), "--no-default-rules", "--rules", str(EXEC_RULES))
    assert res.returncode == 0, res.stderr


@pytest.mark.usefixtures("repo_reachable_by_others")
def test_the_non_root_message_lists_the_units_capabilities() -> None:
    unit = (REPO / "packaging" / "systemd" / "ringwatch.service").read_text()
    bounding = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M)
    assert bounding is not None
    assert tuple(bounding.group(1).split()) == CAPABILITIES
    res = ringwatch("run", "--duration", "0", user=NOBODY)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "ringwatch: ringwatch needs root (the service runs with CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, "
        "CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH) to load BPF programs"]
