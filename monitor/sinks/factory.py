"""Builds the alert and event sinks from the `outputs` config and the command line.

Every output that can block (stdout pipe, file, journal socket) runs behind an AsyncSink;
Kafka has its own queue and spool, in a worker process of its own. One stdout sink
serves both streams, so their lines never interleave mid-line.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor import log
from monitor.sinks.asyncq import AsyncSink
from monitor.sinks.base import FAST_JSON, Sink, dumps
from monitor.sinks.falcoshape import FalcoShapeSink
from monitor.sinks.file import JsonlFileSink
from monitor.sinks.journal import JournalSink, stdout_is_journal
from monitor.sinks.kafka import KafkaSink, KafkaSinkOptions
from monitor.sinks.kafkaproc import KafkaProcessSink
from monitor.sinks.settings import FileOutput, OutputsConfig
from monitor.sinks.stream import StreamSink
from monitor.sinks.textfmt import FORMATS
from monitor.sinks.typefilter import TypeFilterSink


@dataclass
class Outputs:
    alerts: list[Sink] = field(default_factory=list)
    events: list[Sink] = field(default_factory=list)

    def all(self) -> list[Sink]:
        seen: dict[int, Sink] = {}
        for s in [*self.alerts, *self.events]:
            seen.setdefault(id(s), s)
        return list(seen.values())

    def close(self) -> None:
        # Every sink is closed even if one fails: the rest hold queued alerts and spools.
        failed: list[BaseException] = []
        for s in self.all():
            try:
                s.close()
            except Exception as exc:
                failed.append(exc)
        if failed:
            raise failed[0]


@dataclass(frozen=True)
class Wants:
    """What the command line adds on top of the config."""

    events_stdout: bool = False  # run --events
    events_types: frozenset[str] | None = None  # run --events TYPE,...: only these on stdout
    record: Path | None = None  # run --record PATH
    stdout_format: str = "json"  # run -o: json, or text (monitor/sinks/textfmt.py)
    # How ringwatch logs (--log-level, --log-json): the Kafka worker process logs alike.
    log_level: str = "info"
    log_json: bool = False


def use_journal(mode: str, socket_path: Path, environ: Mapping[str, str]) -> bool:
    if mode == "never":
        return False
    if mode == "always":
        return True
    # auto: systemd sets JOURNAL_STREAM for services whose output goes to the journal.
    return bool(environ.get("JOURNAL_STREAM")) and socket_path.exists()


def build(cfg: OutputsConfig, wants: Wants = Wants(),
          environ: Mapping[str, str] | None = None) -> Outputs:
    env = dict(os.environ if environ is None else environ)
    lg = log.get("ringwatch.outputs")
    out = Outputs()
    try:
        _build_into(out, cfg, wants, env)
    except BaseException:
        out.close()  # stop the threads of what was built before the failure
        raise
    lg.info("outputs", alerts=[s.name for s in out.alerts], events=[s.name for s in out.events])
    if not FAST_JSON:
        lg.warning("outputs: no orjson module: records are encoded by Python's json, "
                   "about ten times slower per record")
    return out


def _build_into(out: Outputs, cfg: OutputsConfig, wants: Wants, env: dict[str, str]) -> None:
    stdout: Sink | None = None

    def shared_stdout() -> Sink:
        nonlocal stdout
        if stdout is None:
            fmt = FORMATS.get(wants.stdout_format, dumps)
            stdout = _async(StreamSink("stdout", fmt=fmt), cfg)
        return stdout

    journal_socket = Path(cfg.journal_socket)
    journal = use_journal(cfg.alerts.journal, journal_socket, env)
    if journal:
        out.alerts.append(_async(JournalSink(journal_socket), cfg))
    # Under systemd with the journal on, stdout is the journal as well: do not log twice.
    if cfg.alerts.stdout and not (journal and stdout_is_journal(env)):
        out.alerts.append(_shaped(shared_stdout(), cfg.alerts.stdout_format))
    if cfg.alerts.file is not None:
        out.alerts.append(_shaped(_file(cfg.alerts.file, "alerts-file", cfg), cfg.alerts.file.format))
    if cfg.alerts.kafka_topic:
        out.alerts.append(_shaped(_kafka(cfg, cfg.alerts.kafka_topic, "alerts", wants),
                                   cfg.alerts.kafka_format))

    if cfg.events.stdout or wants.events_stdout:
        stdout_events: Sink = shared_stdout()
        if wants.events_types and not cfg.events.stdout:
            stdout_events = TypeFilterSink(stdout_events, wants.events_types)
        out.events.append(stdout_events)
    if cfg.events.file is not None:
        out.events.append(_file(cfg.events.file, "events-file", cfg))
    if wants.record is not None:
        # Synchronous on purpose: a capture for `replay` and for tests must hold exactly
        # what the sensor delivered. A slow disk then backs up into the ring buffer, whose
        # drops are counted, instead of into a queue. Production uses events.file.
        out.events.append(JsonlFileSink(wants.record, name="record"))
    if cfg.events.kafka_topic:
        out.events.append(_kafka(cfg, cfg.events.kafka_topic, "events", wants))


def _shaped(sink: Sink, fmt: str) -> Sink:
    return FalcoShapeSink(sink) if fmt == "falco" else sink


def _async(inner: Sink, cfg: OutputsConfig) -> Sink:
    return AsyncSink(inner, queue_size=cfg.queue_size, close_timeout_s=cfg.shutdown_timeout_s)


def _file(fo: FileOutput, name: str, cfg: OutputsConfig) -> Sink:
    return _async(JsonlFileSink(Path(fo.path), name=name, fsync=fo.fsync), cfg)


def _kafka(cfg: OutputsConfig, topic: str, stream: str, wants: Wants) -> Sink:
    k = cfg.kafka
    opts = KafkaSinkOptions(
        topic=topic,
        producer=k.producer_kwargs(),
        spool_path=Path(cfg.spool.dir) / f"{stream}.db",
        key=k.key or socket.gethostname(),
        stream=stream,
        spool_max_records=cfg.spool.max_records,
        spool_max_bytes=cfg.spool.max_bytes,
        queue_size=cfg.queue_size,
        # kafka-python fails a record after delivery_timeout_ms; a little longer here
        # so its own error, not this timer, decides.
        ack_timeout_s=k.delivery_timeout_ms / 1000 + 2,
        close_timeout_s=cfg.shutdown_timeout_s,
        write_ahead_s=k.write_ahead_ms / 1000 if k.write_ahead_ms else None,
        durable=k.durable,
    )
    if opts.durable:
        # A commit before emit() returns needs the spool on the caller's thread.
        return KafkaSink(opts, name=f"kafka-{stream}")
    # Its own process: kafka-python's threads starved the pipeline (monitor/sinks/kafkaproc.py).
    return KafkaProcessSink(opts, name=f"kafka-{stream}", log_level=wants.log_level,
                            log_json=wants.log_json)
