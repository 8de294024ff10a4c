"""Kafka sink against a real Kafka-protocol broker (Tansu) on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.sinks.kafka import ID_HEADER, KafkaSink, KafkaSinkOptions
from tests.kafka_broker import TansuBroker, TansuProxy, free_port, read_topic, tansu

pytestmark = pytest.mark.kafka
__all__ = ["tansu"]  # the fixture, imported for pytest

HOST = "host-a"


def alert(i: int, run: str = "r") -> dict[str, Any]:
    return {"id": f"{run}-{i:06d}", "time": "2026-11-21T00:00:00.000000000Z", "host": HOST,
            "rule": "Test rule", "priority": "WARNING", "tags": ["t"], "output": f"alert {i}",
            "proc.pid": 1000 + i, "n": i}


def sink_for(bootstrap: str, spool: Path, topic: str = "alerts",
             producer_extra: dict[str, Any] | None = None, **kw: Any) -> KafkaSink:
    producer: dict[str, Any] = {
        "bootstrap_servers": bootstrap, "acks": "all", "request_timeout_ms": 1500,
        "delivery_timeout_ms": 3000, "max_block_ms": 1500, "bootstrap_timeout_ms": 1500,
        "reconnect_backoff_max_ms": 300, "retry_backoff_ms": 50, "linger_ms": 5,
        **(producer_extra or {}),
    }
    opts = KafkaSinkOptions(topic=topic, producer=producer, spool_path=spool, key=HOST,
                            ack_timeout_s=4.0, backoff_max_s=0.5, **kw)
    return KafkaSink(opts, name="kafka-test")


def wait_until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ids_in_order(msgs: list[Any]) -> list[str]:
    """Record ids by first occurrence in offset order (delivery is at least once)."""
    seen: set[str] = set()
    out = []
    for m in msgs:
        rid = json.loads(m.value)["id"]
        if rid not in seen:
            seen.add(rid)
            out.append(rid)
    return out


def one_partition(msgs: list[Any]) -> list[Any]:
    parts = {m.partition for m in msgs}
    assert len(parts) == 1, f"one host's records spread over partitions {parts}"
    return sorted(msgs, key=lambda m: m.offset)


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung broker."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def test_delivery_key_headers_and_order(tansu: TansuBroker, tmp_path: Path) -> None:
    sink = sink_for(tansu.bootstrap, tmp_path / "spool.db")
    n = 1500
    for i in range(n):
        sink.emit(alert(i))
    event = {"evt.type": "execve", "proc.pid": 7}  # no id: the sink must give it one
    sink.emit(event)
    sink.flush(60)
    wait_until(lambda: sink.stats()["written"] >= n + 1, 60, "every record acknowledged")
    st = sink.stats()
    sink.close()
    assert st["written"] == n + 1 and st["dropped"] == 0 and st["spooled"] == 0, st

    msgs = one_partition(read_topic(tansu.bootstrap, "alerts", n + 1))
    assert len(msgs) == n + 1
    assert all(m.key == HOST.encode() for m in msgs)
    values = [json.loads(m.value) for m in msgs]
    assert [v["id"] for v in values[:n]] == [f"r-{i:06d}" for i in range(n)]
    assert values[0]["rule"] == "Test rule" and values[0]["proc.pid"] == 1000
    for m, v in zip(msgs, values, strict=True):
        assert dict(m.headers)[ID_HEADER] == v["id"].encode()
    last = values[-1]
    assert last["evt.type"] == "execve" and len(last["id"]) == 32
    assert "id" not in event, "the caller's record was modified"


def test_proxy_killed_mid_stream_nothing_lost(tmp_path: Path) -> None:
    broker = TansuBroker(tmp_path)
    broker.start()
    proxy = TansuProxy(tmp_path, broker)
    proxy.start()
    sink = sink_for(proxy.bootstrap, tmp_path / "spool.db")
    n = 1200
    emitted = threading.Event()

    def produce() -> None:
        for i in range(n):
            sink.emit(alert(i))
            if i % 20 == 0:
                time.sleep(0.02)  # a stream that spans the outage
        emitted.set()

    t = threading.Thread(target=produce)
    try:
        t.start()
        wait_until(lambda: sink.stats()["written"] >= 200, 20, "first deliveries")
        proxy.kill()
        wait_until(lambda: sink.stats()["spooled"] > 0, 20, "records to reach the spool")
        time.sleep(0.5)
        proxy.start()
        t.join(30)
        assert emitted.is_set()
        wait_until(lambda: sink.stats()["written"] >= n, 60, "the spool to drain")
        st = sink.stats()
        sink.close()
        assert st["spooled"] == 0 and st["dropped"] == 0 and st["spooled_total"] > 0, st
        msgs = one_partition(read_topic(broker.bootstrap, "alerts", n, timeout=20))
        assert ids_in_order(msgs) == [f"r-{i:06d}" for i in range(n)]
    finally:
        proxy.stop()
        broker.stop()


def test_broker_restarted_later_records_arrive(tmp_path: Path) -> None:
    broker = TansuBroker(tmp_path)
    broker.start()
    sink = sink_for(broker.bootstrap, tmp_path / "spool.db")
    try:
        for i in range(100):
            sink.emit(alert(i, "a"))
        sink.flush(20)
        assert sink.stats()["written"] == 100
        before = read_topic(broker.bootstrap, "alerts", 100)
        assert ids_in_order(before) == [f"a-{i:06d}" for i in range(100)]

        broker.kill()  # in-memory storage: the restarted broker starts empty
        for i in range(300):
            sink.emit(alert(i, "b"))
        wait_until(lambda: sink.stats()["spooled"] > 0, 20, "records to reach the spool")
        broker.start()
        wait_until(lambda: sink.stats()["written"] >= 400, 60, "delivery after restart")
        st = sink.stats()
        assert st["spooled"] == 0 and st["dropped"] == 0, st
        after = one_partition(read_topic(broker.bootstrap, "alerts", 300))
        assert ids_in_order(after) == [f"b-{i:06d}" for i in range(300)]
    finally:
        sink.close(1)
        broker.stop()


def test_spool_carried_across_sink_restart(tmp_path: Path) -> None:
    port = free_port()  # nothing listens yet: the broker is down
    spool = tmp_path / "spool.db"
    first = sink_for(f"127.0.0.1:{port}", spool)
    for i in range(250):
        first.emit(alert(i, "one"))
    first.close(timeout=1)
    st = first.stats()
    assert st["spooled"] == 250 and st["written"] == 0 and st["dropped"] == 0, st

    second = sink_for(f"127.0.0.1:{port}", spool)
    assert second.stats()["spooled"] == 250
    for i in range(50):
        second.emit(alert(i, "two"))
    broker = TansuBroker(tmp_path, port=port)
    broker.start()
    try:
        wait_until(lambda: second.stats()["written"] >= 300, 60, "spooled records to arrive")
        assert second.stats()["spooled"] == 0
        second.close()
        msgs = one_partition(read_topic(broker.bootstrap, "alerts", 300))
        assert ids_in_order(msgs) == (
            [f"one-{i:06d}" for i in range(250)] + [f"two-{i:06d}" for i in range(50)]
        )
    finally:
        second.close(1)
        broker.stop()


def test_spool_full_drops_are_counted_and_persist(tmp_path: Path) -> None:
    port = free_port()
    spool = tmp_path / "spool.db"
    sink = sink_for(f"127.0.0.1:{port}", spool, spool_max_records=50)
    for i in range(80):
        sink.emit(alert(i))
    sink.close(timeout=1)
    st = sink.stats()
    assert st["spooled"] == 50 and st["spool_dropped"] == 30 and st["dropped"] == 30, st

    again = sink_for(f"127.0.0.1:{port}", spool, spool_max_records=50)
    assert again.stats()["spool_dropped_total"] == 30  # still reported after a restart
    broker = TansuBroker(tmp_path, port=port)
    broker.start()
    try:
        wait_until(lambda: again.stats()["written"] >= 50, 60, "the spool to drain")
        again.close()
        msgs = read_topic(broker.bootstrap, "alerts", 50)
        # The oldest records are kept: the start of an incident matters most.
        assert ids_in_order(one_partition(msgs)) == [f"r-{i:06d}" for i in range(50)]
    finally:
        again.close(1)
        broker.stop()


def test_hung_broker_never_blocks_emit(blackhole: int, tmp_path: Path) -> None:
    sink = sink_for(f"127.0.0.1:{blackhole}", tmp_path / "spool.db", queue_size=40,
                    round_records=10)
    n = 1000
    for i in range(n):
        sink.emit(alert(i))
    # emit() returned for every record although the sender is stuck on the broker.
    st = sink.stats()
    assert st["written"] == 0
    assert st["queue_dropped"] >= n - 40 - 10, st
    sink.close(timeout=1)
    st = sink.stats()
    accepted = n - st["queue_dropped"]
    assert st["spooled"] == accepted and st["queued"] == 0, st


def test_record_the_broker_never_takes_is_counted_not_retried(tansu: TansuBroker,
                                                              tmp_path: Path) -> None:
    sink = sink_for(tansu.bootstrap, tmp_path / "spool.db",
                    producer_extra={"max_request_size": 20_000})
    for i in range(20):
        rec = alert(i)
        if i == 7:
            rec["proc.args"] = "A" * 50_000  # larger than any request may be
        sink.emit(rec)
    wait_until(lambda: sink.stats()["written"] >= 19, 20, "the other records")
    st = sink.stats()
    sink.close()
    assert st["written"] == 19 and st["errors"] == 1 and st["spooled"] == 0, st
    msgs = one_partition(read_topic(tansu.bootstrap, "alerts", 19))
    assert ids_in_order(msgs) == [f"r-{i:06d}" for i in range(20) if i != 7]


def test_gzip_batches_reach_the_broker(tansu: TansuBroker, tmp_path: Path) -> None:
    sink = sink_for(tansu.bootstrap, tmp_path / "spool.db",
                    producer_extra={"compression_type": "gzip", "linger_ms": 50})
    for i in range(200):
        sink.emit(alert(i))
    wait_until(lambda: sink.stats()["written"] >= 200, 30, "acknowledgements")
    # kafka-python's own measure: compressed size over raw size of the batches it sent.
    rate = sink._producer.metrics()["producer-metrics"]["compression-rate-avg"]
    sink.close()
    assert 0 < rate < 0.5, rate
    msgs = one_partition(read_topic(tansu.bootstrap, "alerts", 200))
    assert ids_in_order(msgs) == [f"r-{i:06d}" for i in range(200)]


@pytest.mark.parametrize("write_ahead", [None, 0.005])
def test_outage_logged_and_counted_when_it_starts_and_ends(tmp_path: Path, write_ahead: float | None) -> None:
    from structlog.testing import capture_logs

    broker = TansuBroker(tmp_path)
    broker.start()
    with capture_logs() as logs:
        sink = sink_for(broker.bootstrap, tmp_path / "spool.db", write_ahead_s=write_ahead)
        try:
            for i in range(50):
                sink.emit(alert(i, "a"))
            sink.flush(20)  # write-ahead: committed, not yet acknowledged
            wait_until(lambda: sink.stats()["written"] == 50, 20, "the first records acknowledged")
            assert sink.stats()["outages"] == 0 and sink.stats()["outage_active"] == 0

            broker.kill()
            stop = threading.Event()

            emitted: list[int] = []

            def produce() -> None:  # a steady stream across the outage
                while not stop.is_set():
                    sink.emit(alert(len(emitted), "b"))
                    emitted.append(1)
                    time.sleep(0.01)

            t = threading.Thread(target=produce)
            t.start()
            wait_until(lambda: sink.stats()["outage_active"] == 1, 20, "the outage to be noticed")
            time.sleep(3)  # several failed rounds and retries: still one outage
            st = sink.stats()
            assert st["outages"] == 1 and st["outage_s"] >= 2, st
            broker.start()
            wait_until(lambda: sink.stats()["outage_active"] == 0, 60, "the outage to end")
            stop.set()
            t.join()
            sink.flush(30)
            wait_until(lambda: sink.stats()["spooled"] == 0, 60, "the spool to drain")
            st = sink.stats()
            assert st["outages"] == 1 and st["outage_s"] >= 3 and st["dropped"] == 0, st
            # The restarted broker is empty: it holds the stream from the outage on, in order.
            n = len(emitted)
            msgs = one_partition(read_topic(broker.bootstrap, "alerts", n))
            assert ids_in_order(msgs) == [f"b-{i:06d}" for i in range(n)]
        finally:
            sink.close(1)
            broker.stop()
    events = [e for e in logs if e["event"].startswith("kafka outage")]
    assert [e["event"] for e in events] == ["kafka outage started", "kafka outage ended"], events
    assert events[1]["duration_s"] >= 3 and events[1]["spooled"] > 0


CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.test_sinks_kafka import alert, sink_for
sink = sink_for({bootstrap!r}, Path({spool!r}), write_ahead_s={write_ahead!r}, durable={durable!r})
for i in range(1000):
    sink.emit(alert(i, "k"))
# write-ahead: many intervals, and far less than a producer's bootstrap timeout
time.sleep({sleep!r})
print("emitted", flush=True)
time.sleep(60)
"""


def _killed_after_emitting(tmp_path: Path, spool: Path, write_ahead: float | None,
                           durable: bool = False, sleep: float = 0.3) -> None:
    import signal
    import subprocess
    import sys

    from tests.kafka_broker import REPO

    code = CHILD.format(repo=str(REPO), bootstrap=f"127.0.0.1:{free_port()}", spool=str(spool),
                        write_ahead=write_ahead, durable=durable, sleep=sleep)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "emitted"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)


def test_write_ahead_sigkill_loses_nothing_older_than_the_interval(tmp_path: Path) -> None:
    from monitor.sinks.spool import Spool

    # Without write-ahead the records wait in memory while the broker is unreachable: a
    # SIGKILL loses them (the window is the queue).
    _killed_after_emitting(tmp_path, tmp_path / "memory.db", None)
    memory = Spool(tmp_path / "memory.db", 100_000, 1 << 30)
    assert len(memory) < 1000
    memory.close()

    # With it, everything emitted more than an interval before the kill is on disk...
    spool = tmp_path / "wal.db"
    _killed_after_emitting(tmp_path, spool, 0.005)
    kept = Spool(spool, 100_000, 1 << 30)
    assert [json.loads(r.value)["id"] for r in kept.peek(2000)] == [f"k-{i:06d}" for i in range(1000)]
    kept.close()

    # ...and is delivered, in order, by the next run once a broker answers.
    broker = TansuBroker(tmp_path)
    broker.start()
    sink = sink_for(broker.bootstrap, spool, write_ahead_s=0.005)
    try:
        for i in range(1000, 1100):
            sink.emit(alert(i, "k"))
        wait_until(lambda: sink.stats()["written"] >= 1100, 60, "the spool to drain")
        st = sink.stats()
        assert st["spooled"] == 0 and st["dropped"] == 0, st
        msgs = one_partition(read_topic(broker.bootstrap, "alerts", 1100))
        assert ids_in_order(msgs) == [f"k-{i:06d}" for i in range(1100)]
    finally:
        sink.close(1)
        broker.stop()


def test_write_ahead_delivery_in_order(tansu: TansuBroker, tmp_path: Path) -> None:
    sink = sink_for(tansu.bootstrap, tmp_path / "spool.db", write_ahead_s=0.005)
    n = 3000
    for i in range(n):
        sink.emit(alert(i))
    sink.flush(30)  # committed: nothing held only in memory
    assert sink.stats()["queued"] == 0
    wait_until(lambda: sink.stats()["written"] >= n, 60, "every record acknowledged")
    st = sink.stats()
    sink.close()
    assert st["written"] == n and st["dropped"] == 0 and st["outages"] == 0, st
    msgs = one_partition(read_topic(tansu.bootstrap, "alerts", n))
    assert ids_in_order(msgs) == [f"r-{i:06d}" for i in range(n)]


def test_durable_sigkill_right_after_emit_loses_nothing(tmp_path: Path) -> None:
    from monitor.sinks.spool import Spool

    spool = tmp_path / "durable.db"
    _killed_after_emitting(tmp_path, spool, None, durable=True, sleep=0)
    kept = Spool(spool, 100_000, 1 << 30)
    assert [json.loads(r.value)["id"] for r in kept.peek(2000)] == [f"k-{i:06d}" for i in range(1000)]
    kept.close()
    broker = TansuBroker(tmp_path)
    broker.start()
    sink = sink_for(broker.bootstrap, spool, durable=True)
    try:
        sink.emit(alert(1000, "k"))
        wait_until(lambda: sink.stats()["written"] >= 1001, 60, "the spool to drain")
        msgs = one_partition(read_topic(broker.bootstrap, "alerts", 1001))
        assert ids_in_order(msgs) == [f"k-{i:06d}" for i in range(1001)]
    finally:
        sink.close(1)
        broker.stop()


# --- rounds as record batches (monitor/sinks/kafkabatch.py) -------------------------------

def test_rounds_go_as_record_batches_without_a_producer(tansu: TansuBroker, tmp_path: Path) -> None:
    """Small batches: a round is many requests, more than may be in flight at once."""
    sink = sink_for(tansu.bootstrap, tmp_path / "spool.db", topic="batched",
                    producer_extra={"batch_size": 4096, "max_in_flight_requests_per_connection": 2})
    n = 1200
    for i in range(n):
        sink.emit(alert(i))
    wait_until(lambda: sink.stats()["written"] >= n, 60, "every record acknowledged")
    st = sink.stats()
    used_producer, used_batches = sink._producer is not None, sink._batcher is not None
    sink.close()
    assert st["written"] == n and st["dropped"] == 0 and st["outages"] == 0, st
    assert used_batches and not used_producer
    msgs = one_partition(read_topic(tansu.bootstrap, "batched", n))
    assert [json.loads(m.value)["id"] for m in msgs] == [f"r-{i:06d}" for i in range(n)]
    assert all(m.key == HOST.encode() for m in msgs)
    assert all(dict(m.headers) == {ID_HEADER: json.loads(m.value)["id"].encode(),
                                   "ringwatch.stream": b"alerts"} for m in msgs)


def test_batch_and_per_record_rounds_share_the_host_partition(tansu: TansuBroker, tmp_path: Path) -> None:
    """A round holding a record too large for any request goes through KafkaProducer (which
    finds it); the rounds around it as batches. Tansu's topics have several partitions: the
    two must pick the same one for the host's key, or order across rounds is lost."""
    sink = sink_for(tansu.bootstrap, tmp_path / "spool.db", topic="mixed",
                    producer_extra={"max_request_size": 20_000})
    for i in range(100):
        sink.emit(alert(i))
    wait_until(lambda: sink.stats()["written"] >= 100, 30, "the first records")
    for i in range(100, 120):
        rec = alert(i)
        if i == 107:
            rec["proc.args"] = "A" * 50_000
        sink.emit(rec)
    wait_until(lambda: sink.stats()["written"] >= 119, 30, "the round with the large record")
    for i in range(120, 200):
        sink.emit(alert(i))
    wait_until(lambda: sink.stats()["written"] >= 199, 30, "the last records")
    st = sink.stats()
    used_producer, used_batches = sink._producer is not None, sink._batcher is not None
    sink.close()
    assert st["written"] == 199 and st["errors"] == 1, st
    assert used_producer and used_batches
    msgs = one_partition(read_topic(tansu.bootstrap, "mixed", 199))
    assert ids_in_order(msgs) == [f"r-{i:06d}" for i in range(200) if i != 107]


def test_a_batch_refused_for_its_records_goes_on_record_by_record(
        tansu: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker refusing a batch for its records (too large, invalid): what it had not
    acknowledged goes through KafkaProducer, nothing twice, nothing lost. The refusal is
    made here (Tansu refuses none): the first round's first 5 go as a batch, then refused."""
    import kafka.errors as ke

    from monitor.sinks import kafkabatch

    real = kafkabatch.BatchSender.deliver
    calls = []

    def refuse_once(self: Any, topic: str, key: bytes, records: Any, *rest: Any) -> int:
        calls.append(len(records))
        if len(calls) > 1:
            return real(self, topic, key, records, *rest)
        acked = real(self, topic, key, records[:5], *rest)
        raise kafkabatch.BatchRefused(acked, ke.InvalidRecordError("made up"))

    monkeypatch.setattr(kafkabatch.BatchSender, "deliver", refuse_once)
    sink = sink_for(tansu.bootstrap, tmp_path / "spool.db", topic="refused")
    for i in range(50):
        sink.emit(alert(i))
    wait_until(lambda: sink.stats()["written"] >= 50, 30, "every record")
    for i in range(50, 60):
        sink.emit(alert(i))
    wait_until(lambda: sink.stats()["written"] >= 60, 30, "the next round")
    st = sink.stats()
    used_producer = sink._producer is not None
    sink.close()
    assert st["written"] == 60 and st["errors"] == 0 and st["outages"] == 0, st
    assert used_producer and len(calls) >= 2
    msgs = one_partition(read_topic(tansu.bootstrap, "refused", 60))
    assert [json.loads(m.value)["id"] for m in msgs] == [f"r-{i:06d}" for i in range(60)]


@pytest.mark.parametrize(("configs", "usable"), [
    ({"acks": "all"}, True), ({"compression_type": None}, True),
    ({"compression_type": "gzip"}, False), ({"transactional_id": "t"}, False),
])
def test_what_rounds_may_go_as_batches_built_here(configs: dict[str, Any], usable: bool) -> None:
    from monitor.sinks import kafkabatch

    assert kafkabatch.usable(configs) is usable
