"""Lazy fields: a syscall event holds what the loaded rules read; the rest is filled in
only when something needs the whole event (an alert, an event output, a subscriber).

Through the real Pipeline, default or given rules, synthetic kernel records: this is the
userspace half. The kernel half (alerts from live records carry every field) is what
the *_kernel rule tests check on every alert they read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor import paths
from monitor.events.catalog import FIELD_TYPES
from monitor.events.container import ContainerResolver
from monitor.kernel.records import Caps, ExecRecord, Header, RecordType, SyscallRecord
from monitor.lineage.cache import Lineage
from monitor.pipeline import Pipeline
from monitor.rules import RuleSources, load
from monitor.rules.ruleset import RuleSet

OPENAT = 257
LAZY = ("evt.time", "evt.id", "user.name", "proc.cmdline", "proc.args", "proc.apid", "proc.aexepath",
        "thread.cap_effective", "container.id")


class _Collect:
    name = "collect"

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))

    def flush(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {}


def _rules(tmp_path: Path | None = None, extra: str = "") -> RuleSet:
    extra_paths: tuple[Path, ...] = ()
    if extra:
        assert tmp_path is not None
        path = tmp_path / f"extra{len(list(tmp_path.glob('extra*')))}.yaml"
        path.write_text(extra)
        extra_paths = (path,)
    # The test's own files live in a world-writable /tmp tree: development mode.
    return load(RuleSources(paths=extra_paths, default_dir=paths.rules_dir(), allow_unsafe=True,
                            fields=FIELD_TYPES))


def _pipeline(rules: RuleSet, events: list[Any] | None = None) -> tuple[Pipeline, _Collect]:
    alerts = _Collect()
    pipe = Pipeline(rules, events or [], [alerts])
    pipe.lineage.lineage = Lineage(None, 10, 65536, 10_000_000)
    # A parent and the process, as exec records: the lineage knows both.
    for tgid, ppid, start, comm, exe in ((70, 1, 4_000_000, "bash", "/usr/bin/bash"),
                                         (77, 70, 5_000_000, "cat", "/usr/bin/cat")):
        h = Header(RecordType.EXEC, 0, 900, tgid, tgid, ppid, 0, 0, 1, start, comm)
        pipe(ExecRecord(h, 0, 59, exe, [comm, "-n"], -100, 0, False, False, False, False))
    alerts.records.clear()
    return pipe, alerts


def _open(path: str, ktime: int = 10_000) -> SyscallRecord:
    h = Header(RecordType.SYSCALL, 0, ktime, 77, 77, 70, 0, 0, 1, 5_000_000, "cat")
    return SyscallRecord(h, OPENAT, 3, (2**32 - 100, 0, 0, 0, 0, 0), 0, 0, 0, bytes(16), "", path, "", None,
                         caps=Caps((1 << 41) - 1, (1 << 41) - 1, 0))


def _event_of(pipe: Pipeline, rec: SyscallRecord) -> dict[str, Any]:
    """The event as the judge saw it: the pipeline's stages up to the judge, no further."""
    from monitor.stage import Item

    item = Item(rec)
    for stage in pipe.stages:
        if stage is pipe.judge:
            break
        stage(item)
    return item.event


def test_a_quiet_open_holds_only_what_its_rules_read() -> None:
    rules = _rules()
    pipe, alerts = _pipeline(rules)
    ev = _event_of(pipe, _open("/etc/hostname"))
    need = rules.fields_for("openat")
    for f in LAZY:
        assert f not in need, f"a default openat rule reads {f}: pick another lazy field"
        assert f not in ev, f
    # What rules read is there, lineage included.
    assert ev["fd.name"] == "/etc/hostname" and ev["proc.aname"] == ["cat", "bash"]
    assert ev["proc.pname"] == "bash" and ev["proc.exepath"] == "/usr/bin/cat"
    pipe(_open("/etc/hostname"))
    assert alerts.records == []


def test_an_alert_carries_every_field_of_its_event(tmp_path: Path) -> None:
    pipe, alerts = _pipeline(_rules())
    # The opener's /proc entry, where the container lookup reads it (the synthetic pid 77
    # is whatever process, if any, has that pid on the host running the tests).
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "cgroup").write_text("0::/user.slice/user-0.slice/session-1.scope\n")
    pipe.enrich.containers = ContainerResolver(proc_root=str(tmp_path))
    pipe(_open("/etc/shadow"))
    assert [a["rule"] for a in alerts.records] == ["Read sensitive file untrusted"]
    ev = alerts.records[0]["event"]
    assert ev["user.name"] == "root" and ev["proc.cmdline"] == "cat -n" and ev["proc.args"] == "-n"
    assert ev["proc.apid"] == [77, 70] and ev["proc.aexepath"] == ["/usr/bin/cat", "/usr/bin/bash"]
    assert ev["evt.time"].endswith("Z") and ev["evt.id"].endswith("-0-10000")
    assert ev["container.id"] == "host" and "thread.cap_effective" in ev
    # The alert's own process section reads them too.
    assert alerts.records[0]["process"]["user"] == "root"
    assert alerts.records[0]["process"]["cmdline"] == "cat -n"


def test_lazy_and_eager_events_are_the_same_event() -> None:
    """What an alert's event holds equals what an event output writes for the same record
    (where every field is computed at once)."""
    rules = _rules()
    lazy, alerts = _pipeline(rules)
    out = _Collect()
    eager, eager_alerts = _pipeline(rules, [out])
    # Each Decode reads the clocks when it is made: the same offsets for both.
    eager.decode.mono_to_wall_ns = lazy.decode.mono_to_wall_ns
    eager.decode.mono_to_boot_ns = lazy.decode.mono_to_boot_ns
    out.records.clear()
    lazy(_open("/etc/shadow"))
    eager(_open("/etc/shadow"))
    assert alerts.records[0]["event"] == out.records[0] == eager_alerts.records[0]["event"]
    assert len(out.records[0]) > 50


def test_an_event_output_gets_every_field_of_a_quiet_event() -> None:
    out = _Collect()
    pipe, _ = _pipeline(_rules(), [out])
    out.records.clear()
    pipe(_open("/etc/hostname"))
    (ev,) = out.records
    for f in LAZY:
        assert f in ev, f


def test_a_rule_reading_a_lazy_field_gets_it(tmp_path: Path) -> None:
    extra = """
- rule: Root cats the hostname
  desc: reads user.name and proc.cmdline, which no default openat rule reads
  condition: >-
    evt.type == "openat" and fd.name == "/etc/hostname" and user.name == "root"
    and proc.cmdline == "cat -n"
  output: "%user.name ran %proc.cmdline"
  priority: NOTICE
"""
    rules = _rules(tmp_path, extra)
    assert {"user.name", "proc.cmdline"} <= rules.fields_for("openat")
    pipe, alerts = _pipeline(rules)
    pipe(_open("/etc/hostname"))
    assert [a["rule"] for a in alerts.records] == ["Root cats the hostname"]
    assert alerts.records[0]["output"] == "root ran cat -n"


def test_a_reload_changes_what_is_computed(tmp_path: Path) -> None:
    pipe, _ = _pipeline(_rules())
    assert "user.name" not in _event_of(pipe, _open("/etc/hostname"))
    pipe.judge.rules = _rules(tmp_path, """
- rule: Anyone reads the hostname
  desc: reads user.name
  condition: evt.type == "openat" and user.name == "nobody"
  output: "%user.name"
  priority: NOTICE
""")
    assert _event_of(pipe, _open("/etc/hostname"))["user.name"] == "root"


def test_a_live_subscriber_gets_every_field_of_a_quiet_event() -> None:
    """`ringwatch tail --events` subscribes while ringwatch runs: no event output was
    configured, so the events were built lazily, and the subscriber still sees them whole."""

    class Sub:
        wants_events = True

        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []

        def on_alert(self, alert: dict[str, Any]) -> None:
            pass

        def on_event(self, event: dict[str, Any]) -> None:
            self.events.append(dict(event))

    pipe, _ = _pipeline(_rules())
    sub = Sub()
    pipe.emit.subscribe(sub)
    pipe(_open("/etc/hostname"))
    (ev,) = sub.events
    for f in LAZY:
        assert f in ev, f
    sub.wants_events = False
    assert "user.name" not in _event_of(pipe, _open("/etc/hostname"))
