"""The Kafka output in its worker process (monitor/sinks/kafkaproc.py), against Tansu."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.sinks.kafka import ID_HEADER, KafkaSinkOptions
from monitor.sinks.kafkaproc import KafkaProcessSink
from monitor.sinks.kafkawire import (
    FROM_WORKER,
    TO_WORKER,
    FrameReader,
    control_frame,
    record_frame,
    reply_frame,
)
from tests.kafka_broker import REPO, TansuBroker, free_port, read_topic, tansu
from tests.test_sinks_kafka import HOST, alert, ids_in_order, one_partition, wait_until

pytestmark = pytest.mark.kafka
__all__ = ["tansu"]  # the fixture, imported for pytest


def options(bootstrap: str, spool: Path, **kw: Any) -> KafkaSinkOptions:
    producer: dict[str, Any] = {
        "bootstrap_servers": bootstrap, "acks": "all", "request_timeout_ms": 1500,
        "delivery_timeout_ms": 3000, "max_block_ms": 1500, "bootstrap_timeout_ms": 1500,
        "reconnect_backoff_max_ms": 300, "retry_backoff_ms": 50, "linger_ms": 5,
    }
    return KafkaSinkOptions(topic="alerts", producer=producer, spool_path=spool, key=HOST,
                            ack_timeout_s=4.0, backoff_max_s=0.5, **kw)


def worker_pid(sink: KafkaProcessSink) -> int:
    proc = sink.link._proc
    assert proc is not None
    return proc.pid


def test_delivered_in_order_by_another_process(tansu: TansuBroker, tmp_path: Path) -> None:
    sink = KafkaProcessSink(options(tansu.bootstrap, tmp_path / "spool.db"), name="kafka-test")
    try:
        pid = worker_pid(sink)
        assert pid != os.getpid()
        # A Ctrl-C or a SIGTERM to the whole group reaches it: the worker waits for its close.
        os.kill(pid, signal.SIGTERM)
        n = 2000
        for i in range(n // 2):
            sink.emit(alert(i))
        sink.flush(60)
        assert sink.stats()["written"] == n // 2
        time.sleep(0.3)  # the worker is waiting for input now, not starting
        for i in range(n // 2, n):
            sink.emit(alert(i))
        event = {"evt.type": "execve", "proc.pid": 7}  # no id: one is made for it
        sink.emit(event)
        sink.flush(60)
        st = sink.stats()
        assert st["written"] == n + 1 and st["dropped"] == 0 and st["queued"] == 0, st
        assert st["worker_restarts"] == 0 and worker_pid(sink) == pid
    finally:
        sink.close()
    assert sink.link._proc is not None and sink.link._proc.returncode == 0
    msgs = one_partition(read_topic(tansu.bootstrap, "alerts", n + 1))
    values = [json.loads(m.value) for m in msgs]
    assert [v["id"] for v in values[:n]] == [f"r-{i:06d}" for i in range(n)]
    assert all(m.key == HOST.encode() for m in msgs)
    for m, v in zip(msgs, values, strict=True):
        assert dict(m.headers)[ID_HEADER] == v["id"].encode()
    assert values[-1]["evt.type"] == "execve" and len(values[-1]["id"]) == 32
    assert "id" not in event, "the caller's record was modified"


def test_record_json_cannot_hold_is_counted(tansu: TansuBroker, tmp_path: Path) -> None:
    sink = KafkaProcessSink(options(tansu.bootstrap, tmp_path / "spool.db"), name="kafka-test")
    try:
        sink.emit(alert(0))
        sink.emit({"id": "bad", "path": "/tmp/\udcff"})  # a lone surrogate: not UTF-8
        sink.emit(alert(1))
        sink.flush(30)
        st = sink.stats()
    finally:
        sink.close()
    assert st["written"] == 2 and st["errors"] == 1, st


def test_dead_worker_restarted_and_counted(tansu: TansuBroker, tmp_path: Path) -> None:
    sink = KafkaProcessSink(options(tansu.bootstrap, tmp_path / "spool.db"), name="kafka-test")
    try:
        for i in range(500):
            sink.emit(alert(i))
        sink.flush(30)
        first = worker_pid(sink)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: sink.link._proc is not None and sink.link._proc.poll() is not None, 10,
                   "the worker to die")
        time.sleep(1.1)  # restarts are at most one a second
        for i in range(500, 1000):
            sink.emit(alert(i))
        sink.flush(30)
        st = sink.stats()
        assert worker_pid(sink) != first
    finally:
        sink.close()
    # The first batch was acknowledged before the kill; the dead worker's count is kept.
    assert st["worker_restarts"] == 1 and st["written"] == 1000, st
    msgs = one_partition(read_topic(tansu.bootstrap, "alerts", 1000))
    assert ids_in_order(msgs) == [f"r-{i:06d}" for i in range(1000)]


CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from monitor import log
from monitor.sinks.kafka import KafkaSinkOptions
from monitor.sinks.kafkaproc import KafkaProcessSink
producer = {{"bootstrap_servers": {bootstrap!r}, "max_block_ms": 500, "bootstrap_timeout_ms": 500,
            "request_timeout_ms": 500, "delivery_timeout_ms": 1000}}
opts = KafkaSinkOptions(topic="alerts", producer=producer, spool_path=Path({spool!r}), key="h",
                        ack_timeout_s=1.5, close_timeout_s=2.0)
log.configure("info")  # to stderr: stdout is read by the test
sink = KafkaProcessSink(opts, name="kafka-test")
print(sink.link._proc.pid, flush=True)
for i in range(1000):
    sink.emit({{"id": f"k-{{i:06d}}", "n": i}})
time.sleep(0.5)  # the queue's thread writes to the pipe within milliseconds
print("emitted", flush=True)
time.sleep(60)
"""


def exited(pid: int) -> bool:
    """Gone, or a zombie its new parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def test_ringwatch_sigkilled_worker_spools_what_it_holds(tmp_path: Path) -> None:
    from monitor.sinks.spool import Spool

    spool = tmp_path / "spool.db"
    code = CHILD.format(repo=str(REPO), bootstrap=f"127.0.0.1:{free_port()}", spool=str(spool))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "emitted"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    # The worker reads to the end of its input, spools what the unreachable broker did not
    # take, and exits; its lock on the spool says when.
    fd = os.open(f"{spool}.lock", os.O_RDWR)
    deadline = time.monotonic() + 30
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            assert time.monotonic() < deadline, "the worker never let go of the spool"
            time.sleep(0.1)
    os.close(fd)
    wait_until(lambda: exited(worker), 10, "the worker to exit")
    kept = Spool(spool, 100_000, 1 << 30)
    try:
        assert [json.loads(r.value)["id"] for r in kept.peek(2000)] == [f"k-{i:06d}" for i in range(1000)]
    finally:
        kept.close()


def test_frames_survive_any_split() -> None:
    stream = (record_frame(b"a-1", b'{"x":1}') + control_frame(b"F", 7, 1500)
              + record_frame(b"", b"") + record_frame(b"b" * 40, b"y" * 3000))
    want = [(b"R", 3, 7, b'a-1{"x":1}'), (b"F", 7, 1500, b""), (b"R", 0, 0, b""),
            (b"R", 40, 3000, b"b" * 40 + b"y" * 3000)]
    for step in (1, 2, 5, 9, 64, len(stream)):
        reader = FrameReader(TO_WORKER)
        got = []
        for at in range(0, len(stream), step):
            reader.feed(stream[at:at + step])
            got.extend(reader.frames())
        assert got == want, step
        assert reader.pending() == 0
    reader = FrameReader(FROM_WORKER)
    reader.feed(reply_frame(b"S", 3, {"written": 5})[:-1])
    assert list(reader.frames()) == [] and reader.pending() > 0
