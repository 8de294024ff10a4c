"""`ringwatch run` on the real kernel with every output on at once.

Alerts from real execs reach stdout, a file, Kafka (a real broker) and the journal (a real
journald); events reach a file and Kafka. Both files are rotated (rename + SIGHUP) while
the daemon runs, and no line is lost across the rotation.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.sinks.spool import read_stats
from tests.journald import PrivateJournald, journald
from tests.kafka_broker import TansuBroker, TansuProxy, free_port, read_topic, tansu
from tests.monitor_proc import RunningMonitor, read_jsonl

pytestmark = [pytest.mark.kernel, pytest.mark.kafka]
__all__ = ["journald", "tansu"]  # fixtures, imported for pytest


@pytest.fixture
def bpffs_dir() -> Iterator[Path]:
    path = Path(f"/sys/fs/bpf/ringwatch-test-{uuid.uuid4().hex[:8]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_lines(path: Path, pred: Any, n: int, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in read_jsonl(path) if pred(r)]
        if len(found) >= n:
            return found
        assert time.monotonic() < deadline, f"{path}: {len(found)} of {n} records"
        time.sleep(0.05)


def event_key(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["evt.mono_ns"], e["proc.tid"], e["evt.type"])


def test_all_outputs_with_rotation(tmp_path: Path, tansu: TansuBroker,
                                   journald: PrivateJournald, bpffs_dir: Path) -> None:
    marker = f"rwmark{uuid.uuid4().hex[:8]}"
    exe = tmp_path / marker
    shutil.copy("/bin/true", exe)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"- rule: Marker ran\n"
        f'  condition: evt.type == "execve" and proc.name == "{marker}"\n'
        f'  output: "marker ran (pid=%proc.pid exe=%proc.exe)"\n'
        "  priority: WARNING\n"
        "  tags: [test]\n"
    )
    alerts_file = tmp_path / "out" / "alerts.jsonl"
    events_file = tmp_path / "out" / "events-out.jsonl"
    cfg = {
        "lineage": {"bpffs_dir": str(bpffs_dir), "max_entries": 4096},
        "enforcement": {"enabled": False},  # not what this test is about: a shorter start
        "outputs": {
            "alerts": {"stdout": True, "journal": "always", "kafka_topic": "rw-alerts",
                       "file": {"path": str(alerts_file), "fsync": "flush"}},
            "events": {"file": {"path": str(events_file)}, "kafka_topic": "rw-events"},
            "kafka": {"bootstrap_servers": [tansu.bootstrap], "request_timeout_ms": 3000,
                      "delivery_timeout_ms": 6000, "max_block_ms": 3000},
            "spool": {"dir": str(tmp_path / "spool")},
            "journal_socket": str(journald.socket_path),
        },
    }
    is_marker = lambda a: a.get("rule") == "Marker ran"  # noqa: E731
    mon = RunningMonitor(tmp_path / "mon", cfg, args=["--no-default-rules", "--rules", str(rules)])
    try:
        mon.start(timeout=180)  # bcc compiles for tens of seconds on a loaded machine
        for _ in range(3):
            subprocess.run([str(exe)], check=True)
        wait_lines(alerts_file, is_marker, 3)
        rotated_alerts = alerts_file.with_name("alerts.jsonl.1")
        rotated_events = events_file.with_name("events-out.jsonl.1")
        alerts_file.rename(rotated_alerts)
        events_file.rename(rotated_events)
        assert mon.proc is not None
        mon.proc.send_signal(signal.SIGHUP)
        mon.wait_log("reloaded")
        for _ in range(2):
            subprocess.run([str(exe)], check=True)
        wait_lines(alerts_file, is_marker, 2)
        assert mon.stop() == 0
        closed = mon.wait_log("outputs_closed")["outputs"]
    finally:
        mon.__exit__()  # kills it if a check above failed
    assert journald.alive()

    for name in ("stdout", "alerts-file", "events-file", "record", "kafka-alerts",
                 "kafka-events", "journal"):
        st = closed[name]
        assert st.get("dropped", 0) == 0 and st.get("errors", 0) == 0, (name, st)
    assert closed["kafka-alerts"]["spooled"] == 0 and closed["kafka-events"]["spooled"] == 0

    file_alerts = [a for p in (rotated_alerts, alerts_file) for a in read_jsonl(p)]
    ids = [a["id"] for a in file_alerts if is_marker(a)]
    assert len(ids) == 5 and len(set(ids)) == 5
    stdout_ids = [a["id"] for a in read_jsonl(mon.stdout_path) if is_marker(a)]
    assert stdout_ids == ids

    kafka_alerts = read_topic(tansu.bootstrap, "rw-alerts", len(file_alerts))
    assert [json.loads(m.value)["id"] for m in kafka_alerts] == [a["id"] for a in file_alerts]
    assert {m.key for m in kafka_alerts} == {socket.gethostname().encode()}

    entries = journald.wait_for(5, "RINGWATCH_RULE=Marker ran", priority="warning")
    assert sorted(e["RINGWATCH_ALERT_ID"] for e in entries) == sorted(ids)
    assert {e["PRIORITY"] for e in entries} == {"4"}
    pids = {str(a["event"]["proc.pid"]) for a in file_alerts if is_marker(a)}
    assert {e["RINGWATCH_PID"] for e in entries} == pids
    assert all(e["MESSAGE"].startswith("WARNING Marker ran: marker ran (pid=") for e in entries)

    # Rotation lost no event: the two halves together are exactly what --record got.
    halves = [read_jsonl(rotated_events), read_jsonl(events_file)]
    assert halves[0] and halves[1], "rotation happened while events were flowing"
    recorded = read_jsonl(mon.record_path)
    assert [event_key(e) for e in halves[0] + halves[1]] == [event_key(e) for e in recorded]
    kafka_events = read_topic(tansu.bootstrap, "rw-events", len(recorded))
    assert sorted(event_key(json.loads(m.value)) for m in kafka_events) == sorted(
        event_key(e) for e in recorded)
    # Each event keeps its own evt.id in every sink: consumers de-duplicate by it.
    assert sorted(json.loads(m.value)["evt.id"] for m in kafka_events) == sorted(
        e["evt.id"] for e in recorded)


def test_kafka_spool_carried_across_restart(tmp_path: Path, bpffs_dir: Path) -> None:
    """Alerts raised while Kafka is down wait in the spool through a restart of ringwatch,
    and reach the broker, first and in order, once it is up."""
    marker = f"rwmark{uuid.uuid4().hex[:8]}"
    exe = tmp_path / marker
    shutil.copy("/bin/true", exe)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"- rule: Marker ran\n"
        f'  condition: evt.type == "execve" and proc.name == "{marker}"\n'
        f'  output: "marker ran (pid=%proc.pid)"\n'
        "  priority: NOTICE\n"
    )
    port = free_port()  # nothing listens yet: the broker is down
    cfg = {
        "lineage": {"bpffs_dir": str(bpffs_dir), "max_entries": 4096},
        "enforcement": {"enabled": False},
        "outputs": {
            "alerts": {"stdout": True, "journal": "never", "kafka_topic": "rw-alerts"},
            "kafka": {"bootstrap_servers": [f"127.0.0.1:{port}"], "request_timeout_ms": 1000,
                      "delivery_timeout_ms": 2000, "max_block_ms": 1000},
            "spool": {"dir": str(tmp_path / "spool")},
            "shutdown_timeout_s": 1.0,
        },
    }
    args = ["--no-default-rules", "--rules", str(rules)]
    is_marker = lambda a: a.get("rule") == "Marker ran"  # noqa: E731

    def run_once(workdir: Path, execs: int) -> tuple[list[str], dict[str, Any]]:
        mon = RunningMonitor(workdir, cfg, args=args)
        try:
            mon.start(timeout=180)
            for _ in range(execs):
                subprocess.run([str(exe)], check=True)
            alerts = wait_lines(mon.stdout_path, is_marker, execs)
            assert mon.stop() == 0
            return [a["id"] for a in alerts], mon.wait_log("outputs_closed")["outputs"]
        finally:
            mon.__exit__()

    first_ids, closed = run_once(tmp_path / "a", 3)
    assert closed["kafka-alerts"]["spooled"] == 3 and closed["kafka-alerts"]["written"] == 0
    assert read_stats(tmp_path / "spool" / "alerts.db").depth == 3

    broker = TansuBroker(tmp_path, port=port)
    broker.start()
    try:
        second_ids, closed = run_once(tmp_path / "b", 2)
        st = closed["kafka-alerts"]
        assert st["written"] == 5 and st["spooled"] == 0 and st["dropped"] == 0, st
        msgs = read_topic(broker.bootstrap, "rw-alerts", 5)
        assert [json.loads(m.value)["id"] for m in msgs] == first_ids + second_ids
    finally:
        broker.stop()


def test_kafka_broker_killed_mid_stream_daemon(tmp_path: Path, bpffs_dir: Path) -> None:
    """A running ringwatch streams alerts from real execs into Kafka while the broker's
    listener (a Tansu proxy in front of the broker) is killed and comes back: every alert
    raised before, during and after the outage reaches the topic, once each and in order."""
    marker = f"rwmark{uuid.uuid4().hex[:8]}"
    exe = tmp_path / marker
    shutil.copy("/bin/true", exe)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"- rule: Marker ran\n"
        f'  condition: evt.type == "execve" and proc.name == "{marker}"\n'
        f'  output: "marker ran (pid=%proc.pid)"\n'
        "  priority: NOTICE\n"
    )
    broker = TansuBroker(tmp_path)
    broker.start()
    proxy = TansuProxy(tmp_path, broker)
    proxy.start()
    cfg = {
        "lineage": {"bpffs_dir": str(bpffs_dir), "max_entries": 4096},
        "enforcement": {"enabled": False},
        "outputs": {
            "alerts": {"stdout": True, "journal": "never", "kafka_topic": "rw-alerts"},
            "kafka": {"bootstrap_servers": [proxy.bootstrap], "request_timeout_ms": 1000,
                      "delivery_timeout_ms": 2000, "max_block_ms": 1000},
            "spool": {"dir": str(tmp_path / "spool")},
            "shutdown_timeout_s": 10.0,
        },
    }
    is_marker = lambda a: a.get("rule") == "Marker ran"  # noqa: E731
    mon = RunningMonitor(tmp_path / "mon", cfg, args=["--no-default-rules", "--rules", str(rules)])
    try:
        mon.start(timeout=180)
        n = 30
        for i in range(n):
            if i == 10:
                wait_lines(mon.stdout_path, is_marker, 10)
                proxy.kill()  # mid-stream: the next alerts meet a dead listener
            if i == 20:
                proxy.start()
            subprocess.run([str(exe)], check=True)
            time.sleep(0.1)
        alerts = wait_lines(mon.stdout_path, is_marker, n)
        assert mon.stop() == 0
        st = mon.wait_log("outputs_closed")["outputs"]["kafka-alerts"]
        msgs = read_topic(broker.bootstrap, "rw-alerts", n, timeout=30)
    finally:
        mon.__exit__()
        proxy.stop()
        broker.stop()
    ids = [a["id"] for a in alerts]
    assert len(set(ids)) == n
    got = [json.loads(m.value)["id"] for m in msgs]
    assert got == ids, (st, len(got))
    assert st["spooled"] == 0 and st["dropped"] == 0 and st["written"] == n, st
    assert st["spooled_total"] > 0, f"the outage was never felt: {st}"
