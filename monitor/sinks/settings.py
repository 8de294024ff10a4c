"""The `outputs` section of the config: where alerts and events go.

Plain dataclasses that monitor/config.py's loader walks like every other section (unknown
keys and wrong types are reported with their dotted key); each validate() checks what a
type cannot say. monitor/sinks/factory.py turns them into sinks.

    outputs:
      alerts: {stdout: true, journal: auto, file: {path: /var/log/ringwatch/alerts.jsonl},
               kafka_topic: ringwatch.alerts}
      events: {file: {path: /var/log/ringwatch/events.jsonl, fsync: never},
               kafka_topic: ringwatch.events}
      kafka: {bootstrap_servers: ["kafka1:9092"], acks: all, compression_type: zstd}
      spool: {dir: /var/lib/ringwatch/spool, max_records: 100000}
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import ConfigError, UserError
from monitor.sinks.file import FSYNC_POLICIES

JOURNAL_MODES = ("auto", "always", "never")
# Alert record shapes: ringwatch's own, or Falco's JSON output (for falcosidekick & co.).
ALERT_FORMATS = ("ringwatch", "falco")
COMPRESSION = ("gzip", "snappy", "lz4", "zstd")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")
ACKS = {"all": "all", "-1": "all", "1": 1, "0": 0}
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOSTPORT = re.compile(r"[^\s:]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}")


def _error(where: str, key: str, msg: str) -> UserError:
    return ConfigError(f"{where}: {key}: {msg}")


def _check_topic(topic: str | None, where: str, key: str) -> None:
    if topic is not None and not _TOPIC.fullmatch(topic):
        raise _error(where, key, f"not a valid Kafka topic name: {topic!r}")


def _check_format(fmt: str, where: str, key: str) -> None:
    if fmt not in ALERT_FORMATS:
        raise _error(where, key, f"must be one of {', '.join(ALERT_FORMATS)}, got {fmt!r}")


def _codec_available(name: str) -> bool:
    import kafka.codec

    check = getattr(kafka.codec, f"has_{name}", None)
    return bool(check()) if check is not None else False


@dataclass
class FileOutput:
    path: str = ""
    # never | flush (fsync whenever the queue runs dry) | always (after every record)
    fsync: str = "never"
    format: str = "ringwatch"  # alerts only: ringwatch | falco

    def validate(self, where: str, prefix: str) -> None:
        _check_format(self.format, where, f"{prefix}.format")
        if not self.path.startswith("/"):
            raise _error(where, f"{prefix}.path", f"must be an absolute path, got {self.path!r}")
        if self.fsync not in FSYNC_POLICIES:
            raise _error(where, f"{prefix}.fsync",
                         f"must be one of {', '.join(FSYNC_POLICIES)}, got {self.fsync!r}")


@dataclass
class AlertOutputs:
    stdout: bool = True
    # auto: the journal's native protocol when systemd runs ringwatch (JOURNAL_STREAM set);
    # always; never. With the journal on, stdout is not also used if it is the journal.
    journal: str = "auto"
    file: FileOutput | None = None
    kafka_topic: str | None = None
    # ringwatch | falco (Falco's JSON alert shape) | text (one readable line per alert and
    # event; `run -o` overrides it)
    stdout_format: str = "ringwatch"
    kafka_format: str = "ringwatch"

    def validate(self, where: str, prefix: str) -> None:
        if self.stdout_format != "text":
            _check_format(self.stdout_format, where, f"{prefix}.stdout_format")
        _check_format(self.kafka_format, where, f"{prefix}.kafka_format")
        if self.journal not in JOURNAL_MODES:
            raise _error(where, f"{prefix}.journal",
                         f"must be one of {', '.join(JOURNAL_MODES)}, got {self.journal!r}")
        _check_topic(self.kafka_topic, where, f"{prefix}.kafka_topic")


@dataclass
class EventOutputs:
    # Every event, not only alerts: many per second on a busy host. Off unless asked for.
    stdout: bool = False
    file: FileOutput | None = None
    kafka_topic: str | None = None

    def validate(self, where: str, prefix: str) -> None:
        _check_topic(self.kafka_topic, where, f"{prefix}.kafka_topic")


@dataclass
class KafkaOutput:
    bootstrap_servers: list[str] = field(default_factory=list)
    client_id: str = "ringwatch"
    # Message key; empty = this host's name, so one host's records stay in order.
    key: str = ""
    acks: Any = "all"  # all | 1 | 0
    compression_type: str | None = None
    # Bytes per producer batch: kafka-python wakes its sender thread (a socket write) for
    # every new batch, so small batches cost a syscall per record or two. 256 KiB stays
    # below the brokers' default message.max.bytes (1 MiB).
    batch_size: int = 262144
    linger_ms: int = 5
    request_timeout_ms: int = 10_000
    # After this long unacknowledged, records go to the spool.
    delivery_timeout_ms: int = 30_000
    max_block_ms: int = 5_000
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    # Write-ahead: commit the in-memory queue to the spool every this many ms and send
    # only from the spool, so a crash (SIGKILL) loses at most the records of the last
    # interval. 0: records wait in memory (up to outputs.queue_size of them are lost to a
    # crash) and are spooled only while the broker is slow or down.
    write_ahead_ms: int = 0
    # Every record committed to the spool before emit returns: nothing accepted is lost to
    # a crash, at one SQLite commit per record on the pipeline's thread.
    durable: bool = False
    # Any other kafka-python KafkaProducer option, passed as it is.
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str, prefix: str) -> None:
        for i, hp in enumerate(self.bootstrap_servers):
            if not _HOSTPORT.fullmatch(hp):
                raise _error(where, f"{prefix}.bootstrap_servers[{i}]",
                             f"expected host:port, got {hp!r}")
        if str(self.acks) not in ACKS:
            raise _error(where, f"{prefix}.acks", f"must be all, 1 or 0, got {self.acks!r}")
        if self.compression_type is not None and self.compression_type not in COMPRESSION:
            raise _error(where, f"{prefix}.compression_type",
                         f"must be one of {', '.join(COMPRESSION)}, got {self.compression_type!r}")
        if self.compression_type is not None and not _codec_available(self.compression_type):
            # Otherwise the producer fails on every send and everything piles up in the spool.
            raise _error(where, f"{prefix}.compression_type",
                         f"{self.compression_type} needs its Python module (python-{self.compression_type}"
                         f" for kafka-python), which is not installed")
        for name in ("batch_size", "request_timeout_ms", "delivery_timeout_ms", "max_block_ms"):
            if getattr(self, name) <= 0:
                raise _error(where, f"{prefix}.{name}", f"must be positive, got {getattr(self, name)}")
        if self.write_ahead_ms < 0:
            raise _error(where, f"{prefix}.write_ahead_ms",
                         f"must not be negative, got {self.write_ahead_ms}")
        if self.linger_ms < 0:
            raise _error(where, f"{prefix}.linger_ms", f"must not be negative, got {self.linger_ms}")
        if self.delivery_timeout_ms < self.request_timeout_ms + self.linger_ms:
            raise _error(where, f"{prefix}.delivery_timeout_ms",
                         "must be at least request_timeout_ms + linger_ms")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise _error(where, f"{prefix}.security_protocol",
                         f"must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                         f"got {self.security_protocol!r}")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None and not os.path.isfile(value):  # never raises (ENAMETOOLONG, NUL)
                raise _error(where, f"{prefix}.{name}", f"no such file: {value}")
        self._validate_sasl(where, prefix)
        named = {f for f in self.__dataclass_fields__ if f not in ("extra", "key")}
        for k in self.extra:
            if k in named or k in ("bootstrap_servers", "bootstrap_timeout_ms"):
                raise _error(where, f"{prefix}.extra.{k}", f"set it as {prefix}.{k} instead")

    def _validate_sasl(self, where: str, prefix: str) -> None:
        if self.sasl_mechanism is not None and self.sasl_mechanism not in SASL_MECHANISMS:
            raise _error(where, f"{prefix}.sasl_mechanism",
                         f"must be one of {', '.join(SASL_MECHANISMS)}, got {self.sasl_mechanism!r}")
        if self.security_protocol.startswith("SASL_") and self.sasl_mechanism is None:
            raise _error(where, f"{prefix}.sasl_mechanism",
                         f"required with security_protocol {self.security_protocol}")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            for name in ("sasl_plain_username", "sasl_plain_password"):
                if not getattr(self, name):
                    raise _error(where, f"{prefix}.{name}",
                                 f"required with sasl_mechanism {self.sasl_mechanism}")

    def producer_kwargs(self) -> dict[str, Any]:
        """KafkaProducer(**this): only what is set, so kafka-python's defaults apply."""
        kw: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "acks": ACKS[str(self.acks)],
            "batch_size": self.batch_size,
            "linger_ms": self.linger_ms,
            "request_timeout_ms": self.request_timeout_ms,
            "delivery_timeout_ms": self.delivery_timeout_ms,
            "max_block_ms": self.max_block_ms,
            # Creating a producer waits for a broker this long at most: the sender thread
            # moves the queue to the spool only between waits.
            "bootstrap_timeout_ms": self.max_block_ms,
            "security_protocol": self.security_protocol,
            "ssl_check_hostname": self.ssl_check_hostname,
        }
        for name in ("compression_type", "ssl_cafile", "ssl_certfile", "ssl_keyfile",
                     "ssl_password", "sasl_mechanism", "sasl_plain_username",
                     "sasl_plain_password"):
            value = getattr(self, name)
            if value is not None:
                kw[name] = value
        kw.update(self.extra)
        return kw


@dataclass
class SpoolSettings:
    # One SQLite file per Kafka stream here (alerts.db, events.db).
    dir: str = "/var/lib/ringwatch/spool"
    max_records: int = 100_000
    max_bytes: int = 256 * 1024 * 1024

    def validate(self, where: str, prefix: str) -> None:
        if not self.dir.startswith("/"):
            raise _error(where, f"{prefix}.dir", f"must be an absolute path, got {self.dir!r}")
        for name in ("max_records", "max_bytes"):
            if getattr(self, name) < 1:
                raise _error(where, f"{prefix}.{name}", f"must be positive, got {getattr(self, name)}")


@dataclass
class OutputsConfig:
    alerts: AlertOutputs = field(default_factory=AlertOutputs)
    events: EventOutputs = field(default_factory=EventOutputs)
    kafka: KafkaOutput = field(default_factory=KafkaOutput)
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    journal_socket: str = "/run/systemd/journal/socket"
    # Records each output may hold in memory while it is slow; beyond, dropped and counted.
    queue_size: int = 10_000
    # At shutdown, how long each output may take to deliver what it holds (Kafka: the rest
    # is spooled).
    shutdown_timeout_s: float = 5.0

    def validate(self, where: str, prefix: str) -> None:
        if self.queue_size < 1:
            raise _error(where, f"{prefix}.queue_size", f"must be positive, got {self.queue_size}")
        if self.shutdown_timeout_s < 0:
            raise _error(where, f"{prefix}.shutdown_timeout_s", "must not be negative")
        if not self.journal_socket.startswith("/"):
            raise _error(where, f"{prefix}.journal_socket",
                         f"must be an absolute path, got {self.journal_socket!r}")
        for stream in ("alerts", "events"):
            if getattr(self, stream).kafka_topic and not self.kafka.bootstrap_servers:
                raise _error(where, f"{prefix}.kafka.bootstrap_servers",
                             f"required when {prefix}.{stream}.kafka_topic is set")
        a, e = self.alerts.file, self.events.file
        if e is not None and e.format != "ringwatch":
            raise _error(where, f"{prefix}.events.file.format", "only alerts have a Falco format")
        if a is not None and e is not None and a.path == e.path:
            raise _error(where, f"{prefix}.events.file.path",
                         f"same file as {prefix}.alerts.file.path: {a.path}")
