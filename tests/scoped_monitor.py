"""A `ringwatch run` with the packaged default rules, tracing only this test process's cgroup.

For kernel tests of default rules that also look at the recorded events: the test
process moves into a cgroup of its own (so everything it starts is traced) and the
monitor records events and writes alerts (stdout) for that cgroup only. The rules and
kernel filters are the packaged ones; sensor.extra_event_types adds types to record.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.kernel_util import cgroup2_root
from tests.monitor_proc import RunningMonitor, read_jsonl

Alert = dict[str, Any]


def _own_cgroup2() -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return cgroup2_root() / line[3:].lstrip("/")
    raise AssertionError("not in a cgroup v2 hierarchy")


@contextlib.contextmanager
def own_cgroup(name: str) -> Iterator[Path]:
    home = _own_cgroup2()
    cg = cgroup2_root() / f"ringwatch-test-{name}-{os.getpid()}"
    cg.mkdir()
    try:
        (cg / "cgroup.procs").write_text(str(os.getpid()))
        yield cg
    finally:
        (home / "cgroup.procs").write_text(str(os.getpid()))
        for pid in (cg / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (home / "cgroup.procs").write_text(pid)
        cg.rmdir()


@contextlib.contextmanager
def default_rules_monitor(work: Path, name: str, extra_types: list[str] | None = None,
                          rules_d_files: dict[str, str] | None = None) -> Iterator[RunningMonitor]:
    """rules_d_files: the test's own rules.d (a host's /etc/ringwatch/rules.d must not count)."""
    assert os.geteuid() == 0, "kernel tests need root"
    rules_d = work / "rules.d"
    rules_d.mkdir(exist_ok=True)
    for fname, text in (rules_d_files or {}).items():
        (rules_d / fname).write_text(text)
    pin = Path(f"/sys/fs/bpf/ringwatch-test-{uuid.uuid4().hex[:8]}")
    with own_cgroup(name) as cg:
        cfg = {
            "sensor": {"cgroups": [str(cg)], "extra_event_types": extra_types or []},
            "lineage": {"bpffs_dir": str(pin)},
            "control": {"socket": str(work / "control.sock")},
            "outputs": {"alerts": {"journal": "never"}},
        }
        m = RunningMonitor(work, cfg, env={"RINGWATCH_RULES_D": str(rules_d)})
        try:
            m.start(timeout=180)
            yield m
            assert m.stop() == 0
        finally:
            m.__exit__(None, None, None)
            shutil.rmtree(pin, ignore_errors=True)


def alerts(mon: RunningMonitor) -> list[Alert]:
    return read_jsonl(mon.stdout_path)


def wait_alert(mon: RunningMonitor, rule: str, pred: Callable[[Alert], bool],
               timeout: float = 60) -> Alert:
    try:
        return mon.wait_for(lambda a: a.get("rule") == rule and pred(a), timeout=timeout,
                            path=mon.stdout_path)
    except AssertionError:
        seen = "\n".join(f"{a['rule']}: {a['output']}" for a in alerts(mon)[-30:])
        raise AssertionError(f"no {rule!r} alert within {timeout}s; last alerts:\n{seen}") from None


def alerts_of(mon: RunningMonitor, pid: int, rule: str | None = None) -> list[Alert]:
    return [a for a in alerts(mon) if a["process"]["pid"] == pid and rule in (None, a["rule"])]
