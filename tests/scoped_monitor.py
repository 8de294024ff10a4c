"""A `ringwatch run` tracing only this test process's cgroup.

For kernel tests that judge what the test process itself does: the test process moves
into a cgroup of its own (tests/kernel_util.py's traced_scope, so everything it starts is
traced) and the monitor records events and writes alerts (stdout) for that cgroup only,
with its own bpffs dir, control socket and rules.d. default_rules_monitor is the common
case: the packaged rules and kernel filters, sensor.extra_event_types adding types to record.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tests.kernel_util import traced_scope
from tests.monitor_proc import RunningMonitor, read_jsonl

Alert = dict[str, Any]
M = TypeVar("M", bound=RunningMonitor)


@contextlib.contextmanager
def monitor_on(work: Path, cgroup: Path, monitor_cls: type[M], config: dict[str, Any] | None = None,
               args: Iterable[str] = (), rules_d_files: dict[str, str] | None = None) -> Iterator[M]:
    """monitor_cls (RunningMonitor records events too) started, tracing only `cgroup`.

    config adds sections (its "sensor" section merged); rules_d_files fill the test's own
    rules.d, empty otherwise: a host's /etc/ringwatch/rules.d must not count. The monitor
    must exit 0 when the block ends normally."""
    assert os.geteuid() == 0, "kernel tests need root"
    rules_d = work / "rules.d"
    rules_d.mkdir(exist_ok=True)
    for fname, text in (rules_d_files or {}).items():
        (rules_d / fname).write_text(text)
    pin = Path(f"/sys/fs/bpf/{cgroup.name}-{uuid.uuid4().hex[:8]}")
    extra = dict(config or {})
    cfg = {
        **extra,
        "sensor": {**extra.get("sensor", {}), "cgroups": [str(cgroup)]},
        "lineage": {"bpffs_dir": str(pin)},
    }
    m = monitor_cls(work, cfg, args=args, env={"RINGWATCH_RULES_D": str(rules_d)})
    try:
        m.start(timeout=180)
        yield m
        assert m.stop() == 0
    finally:
        m.__exit__(None, None, None)
        shutil.rmtree(pin, ignore_errors=True)


@contextlib.contextmanager
def scoped_monitor(work: Path, name: str, monitor_cls: type[M], config: dict[str, Any] | None = None,
                   args: Iterable[str] = (), rules_d_files: dict[str, str] | None = None) -> Iterator[M]:
    """monitor_on a fresh traced scope `name` (tests/kernel_util.py) holding this process."""
    with traced_scope(name) as cg, monitor_on(work, cg, monitor_cls, config, args, rules_d_files) as m:
        yield m


@contextlib.contextmanager
def default_rules_monitor(work: Path, name: str, extra_types: list[str] | None = None,
                          rules_d_files: dict[str, str] | None = None) -> Iterator[RunningMonitor]:
    """The packaged rules, recording events: extra_types are recorded beside the rules' own."""
    with scoped_monitor(work, name, RunningMonitor,
                        {"sensor": {"extra_event_types": extra_types or []},
                         "outputs": {"alerts": {"journal": "never"}}},
                        rules_d_files=rules_d_files) as m:
        yield m


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
