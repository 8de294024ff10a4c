"""Outputs built from config and flags; the `outputs` section's validation; the spool."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor import config
from monitor.sinks import factory
from monitor.sinks.asyncq import AsyncSink
from monitor.sinks.file import JsonlFileSink
from monitor.sinks.kafka import KafkaSink
from monitor.sinks.kafkaproc import KafkaProcessSink
from monitor.sinks.spool import Spool, SpoolError, SpoolRecord, read_stats


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "journal.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    try:
        yield path
    finally:
        s.close()


def outputs_cfg(data: dict[str, Any]) -> Any:
    return config.from_mapping({"outputs": data}, "test.yaml").outputs


def names(sinks: list[Any]) -> list[str]:
    return [s.name for s in sinks]


def test_defaults_alerts_to_stdout_only() -> None:
    out = factory.build(outputs_cfg({}), environ={})
    try:
        assert names(out.alerts) == ["stdout"] and out.events == []
    finally:
        out.close()


def test_journal_auto_follows_journal_stream(unix_socket: Path, tmp_path: Path) -> None:
    cfg = outputs_cfg({"journal_socket": str(unix_socket)})
    out = factory.build(cfg, environ={})
    assert names(out.alerts) == ["stdout"]
    out.close()
    # Under systemd, but stdout is not the journal stream (e.g. redirected): both.
    out = factory.build(cfg, environ={"JOURNAL_STREAM": "1:2"})
    assert names(out.alerts) == ["journal", "stdout"]
    out.close()
    # stdout is the journal: the native protocol replaces it rather than doubling it.
    st = os.fstat(1)
    out = factory.build(cfg, environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert names(out.alerts) == ["journal"]
    out.close()
    never = outputs_cfg({"journal_socket": str(unix_socket), "alerts": {"journal": "never"}})
    out = factory.build(never, environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert names(out.alerts) == ["stdout"]
    out.close()


def test_every_output_and_flag(tmp_path: Path) -> None:
    cfg = outputs_cfg({
        "alerts": {"file": {"path": str(tmp_path / "a.jsonl"), "fsync": "always"},
                   "kafka_topic": "al", "journal": "never"},
        "events": {"file": {"path": str(tmp_path / "e.jsonl")}, "kafka_topic": "ev"},
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"], "key": "web-1"},
        "spool": {"dir": str(tmp_path / "spool")},
        "queue_size": 7,
    })
    out = factory.build(cfg, factory.Wants(events_stdout=True, record=tmp_path / "r.jsonl"),
                        environ={})
    try:
        assert names(out.alerts) == ["stdout", "alerts-file", "kafka-alerts"]
        assert names(out.events) == ["stdout", "events-file", "record", "kafka-events"]
        assert out.alerts[0] is out.events[0], "one stdout sink serves both streams"
        assert isinstance(out.alerts[0], AsyncSink) and isinstance(out.events[1], AsyncSink)
        assert isinstance(out.events[2], JsonlFileSink), "--record is an exact capture"
        kafka = out.alerts[2]
        assert isinstance(kafka, KafkaProcessSink), "Kafka runs in a worker process"
        assert kafka.opts.key == "web-1" and kafka.opts.queue_size == 7
        assert kafka.opts.producer["bootstrap_servers"] == ["127.0.0.1:1"]
        assert kafka.opts.producer["acks"] == "all"
        assert len(out.all()) == 6
    finally:
        for s in out.all():
            s.close(0) if isinstance(s, KafkaProcessSink) else s.close()
    # The workers opened them (and took their locks).
    assert (tmp_path / "spool" / "alerts.db").exists()
    assert (tmp_path / "spool" / "events.db.lock").exists()


def test_durable_kafka_stays_in_process(tmp_path: Path) -> None:
    cfg = outputs_cfg({
        "alerts": {"kafka_topic": "al", "journal": "never", "stdout": False},
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"], "durable": True},
        "spool": {"dir": str(tmp_path / "spool")},
    })
    out = factory.build(cfg, environ={})
    try:
        assert isinstance(out.alerts[0], KafkaSink), "a commit per emit needs the caller's thread"
    finally:
        out.alerts[0].close(0)  # type: ignore[call-arg]


def test_an_alert_file_in_falcos_shape(tmp_path: Path) -> None:
    path = tmp_path / "falco.jsonl"
    cfg = outputs_cfg({"alerts": {"stdout": False, "journal": "never",
                                  "file": {"path": str(path), "format": "falco"}}})
    out = factory.build(cfg, environ={})
    alert = {"id": "x", "time": "2026-12-01T10:00:00.123456789Z", "host": "h", "rule": "R",
             "priority": "NOTICE", "action": "alert", "tags": ["a"], "output": "hello",
             "output_fields": {"proc.name": "sh"}, "event": {"evt.ts": 5}}
    try:
        out.alerts[0].emit(alert)
    finally:
        out.close()
    assert json.loads(path.read_text()) == {
        "hostname": "h", "output": "10:00:00.123456789: Notice hello",
        "output_fields": {"proc.name": "sh", "evt.time": 5}, "priority": "Notice", "rule": "R",
        "source": "syscall", "tags": ["a"], "time": "2026-12-01T10:00:00.123456789Z"}


def test_kafka_settings_pass_through() -> None:
    k = outputs_cfg({"kafka": {
        "bootstrap_servers": ["b1:9093", "[::1]:9093"], "acks": 1, "compression_type": "gzip",
        "linger_ms": 50, "batch_size": 65536, "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "p", "extra": {"max_request_size": 2097152},
    }}).kafka
    kw = k.producer_kwargs()
    assert kw["acks"] == 1 and kw["compression_type"] == "gzip" and kw["linger_ms"] == 50
    assert kw["batch_size"] == 65536 and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_username"] == "u" and kw["max_request_size"] == 2097152
    assert "ssl_cafile" not in kw  # unset options keep kafka-python's defaults
    from kafka import KafkaProducer

    unknown = set(kw) - set(KafkaProducer.DEFAULT_CONFIG)
    assert not unknown, f"kafka-python does not know {unknown}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"alerts": {"kafka_topic": "a"}},
         r"outputs\.kafka\.bootstrap_servers: required when outputs\.alerts\.kafka_topic is set"),
        ({"alerts": {"file": {"path": "rel.jsonl"}}}, r"outputs\.alerts\.file\.path: must be an absolute"),
        ({"events": {"file": {"path": "/x", "fsync": "sometimes"}}},
         r"outputs\.events\.file\.fsync: must be one of never, flush, always"),
        ({"alerts": {"journal": "yes"}}, r"outputs\.alerts\.journal: must be one of auto"),
        ({"alerts": {"kafka_topic": "bad topic"}}, r"outputs\.alerts\.kafka_topic: not a valid"),
        ({"kafka": {"acks": 2}}, r"outputs\.kafka\.acks: must be all, 1 or 0"),
        ({"kafka": {"bootstrap_servers": ["nohost"]}},
         r"outputs\.kafka\.bootstrap_servers\[0\]: expected host:port"),
        ({"kafka": {"compression_type": "brotli"}}, r"outputs\.kafka\.compression_type"),
        ({"kafka": {"security_protocol": "SASL_SSL"}},
         r"outputs\.kafka\.sasl_mechanism: required with security_protocol SASL_SSL"),
        ({"kafka": {"sasl_mechanism": "PLAIN"}}, r"outputs\.kafka\.sasl_plain_username: required"),
        ({"kafka": {"ssl_cafile": "/no/such/ca.pem"}}, r"outputs\.kafka\.ssl_cafile: no such file"),
        ({"kafka": {"extra": {"acks": 0}}}, r"outputs\.kafka\.extra\.acks: set it as"),
        ({"kafka": {"delivery_timeout_ms": 100}}, r"outputs\.kafka\.delivery_timeout_ms: must be"),
        ({"kafka": {"linger": 5}}, r"outputs\.kafka\.linger: unknown key"),
        ({"spool": {"max_records": 0}}, r"outputs\.spool\.max_records: must be positive"),
        ({"queue_size": 0}, r"outputs\.queue_size: must be positive"),
        ({"alerts": {"file": {"path": "/l/x"}}, "events": {"file": {"path": "/l/x"}}},
         r"outputs\.events\.file\.path: same file as outputs\.alerts\.file\.path"),
        ({"alerts": {"stdout_format": "splunk"}},
         r"outputs\.alerts\.stdout_format: must be one of ringwatch, falco"),
        ({"events": {"file": {"path": "/l/e", "format": "falco"}}},
         r"outputs\.events\.file\.format: only alerts have a Falco format"),
    ],
)
def test_bad_outputs_config_names_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError, match=message) as err:
        config.from_mapping({"outputs": data}, "test.yaml")
    assert str(err.value).startswith("test.yaml: ")


def test_compression_without_its_codec_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka.codec

    monkeypatch.setattr(kafka.codec, "has_zstd", lambda: False)
    with pytest.raises(config.ConfigError,
                       match=r"outputs\.kafka\.compression_type: zstd needs its Python module"):
        outputs_cfg({"kafka": {"compression_type": "zstd"}})
    monkeypatch.setattr(kafka.codec, "has_zstd", lambda: True)
    assert outputs_cfg({"kafka": {"compression_type": "zstd"}}).kafka.compression_type == "zstd"


def rec(seq: int, size: int = 10) -> SpoolRecord:
    return SpoolRecord(seq, "t", b"k", b"v" * size, f"id-{seq}")


def test_spool_orders_by_sequence_and_bounds_bytes(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_records=100, max_bytes=60)
    assert sp.append([rec(5), rec(2), rec(9)]) == 0  # 3 x (10 + 1 key byte) = 33 bytes
    assert [r.seq for r in sp.peek(10)] == [2, 5, 9]
    assert sp.append([rec(1, 30), rec(12, 5)]) == 1  # 33 + 31 > 60: the big one is refused
    assert [r.rid for r in sp.peek(10)] == ["id-2", "id-5", "id-9", "id-12"]
    sp.delete_through(5)
    assert [r.seq for r in sp.peek(10)] == [9, 12] and len(sp) == 2
    assert sp.max_seq == 12
    sp.close()
    st = read_stats(tmp_path / "s.db")
    assert (st.depth, st.bytes, st.dropped) == (2, 17, 1)
    again = Spool(tmp_path / "s.db", max_records=100, max_bytes=60)
    assert again.stats() == st and again.max_seq == 12
    again.close()


def test_spool_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("not a directory")
    with pytest.raises(SpoolError, match=r"f/s\.db: cannot open spool"):
        Spool(tmp_path / "f" / "s.db", 10, 10)
    (tmp_path / "junk.db").write_bytes(b"x" * 4096)
    with pytest.raises(SpoolError, match=r"junk\.db"):
        Spool(tmp_path / "junk.db", 10, 10)
