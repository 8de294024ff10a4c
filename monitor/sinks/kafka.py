"""Kafka output (kafka-python) with a bounded in-memory queue and an on-disk spool.

emit() only puts the record on a bounded queue; a sender thread serialises, sends and
waits for acknowledgements in rounds. Delivery is at least once: each record carries a
unique id (the alert's `id`, or one made here) in its JSON and in the `ringwatch.id`
header, so consumers can drop duplicates.

Order: every record gets a sequence number when emitted. While the broker is reachable,
rounds are sent in sequence order to one partition per host (the key is the host name).
When a round fails, or acknowledgements are slow, the unacknowledged records and
everything behind them go to the spool, and from then on new records go through the
spool too until it is empty, so nothing overtakes a spooled record.

Outages: the first failed round, or a round whose acknowledgements take longer than
`spill_after_s`, starts an outage (logged "kafka outage started", counted in `outages`);
the next round acknowledged in full ends it (logged "kafka outage ended" with its length
and what was spooled meanwhile; `outage_s` adds it up). A broker that is down for minutes
is thus logged once when it goes and once when it is back, however many retries between.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor import log
from monitor.sinks import kafkabatch
from monitor.sinks.base import dumps_bytes
from monitor.sinks.inbox import Inbox
from monitor.sinks.kafkabatch import BatchRefused, BatchSender, RoundError
from monitor.sinks.spool import Spool, SpoolRecord

ID_HEADER = "ringwatch.id"
STREAM_HEADER = "ringwatch.stream"


@dataclass
class KafkaSinkOptions:
    topic: str
    # Passed to kafka.KafkaProducer as they are: bootstrap_servers, acks, compression_type,
    # batch_size, linger_ms, security_protocol, ssl_*, sasl_*, timeouts, ...
    producer: dict[str, Any]
    spool_path: Path
    key: str  # the host name: one host's records share a partition and stay ordered
    stream: str = "alerts"
    spool_max_records: int = 100_000
    spool_max_bytes: int = 256 * 1024 * 1024
    queue_size: int = 10_000
    round_records: int = 500
    # How long one round may wait for acknowledgements before it is spooled.
    ack_timeout_s: float = 30.0
    # Waiting longer than this for a round moves the queue to the spool meanwhile, so a
    # slow broker costs disk, not dropped records.
    spill_after_s: float = 1.0
    backoff_min_s: float = 0.2
    backoff_max_s: float = 30.0
    close_timeout_s: float = 5.0
    # Write-ahead: every this many seconds the sender commits what waits in memory to the
    # spool (one transaction) and sends only from the spool, so a SIGKILL loses at most
    # what was emitted since the last commit. None: records wait in memory and reach
    # the spool only when the broker is slow or down.
    write_ahead_s: float | None = None
    # Durable: emit() itself commits the record to the spool before it returns (one
    # transaction per record, on the caller's thread), so nothing emit() accepted is lost
    # to a crash of ringwatch. For alerts: it costs the caller a commit per record.
    durable: bool = False
    extra_headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class _Pending:
    seq: int
    record: dict[str, Any] | None
    # Already encoded (the worker process's records, monitor/sinks/kafkaproc.py): the
    # JSON bytes and their id.
    value: bytes = b""
    rid: str = ""


class KafkaSink:
    def __init__(self, opts: KafkaSinkOptions, name: str = "kafka") -> None:
        self.name = name
        self.opts = opts
        self.log = log.get("ringwatch.kafka").bind(sink=name, topic=opts.topic)
        self._spool = Spool(opts.spool_path, opts.spool_max_records, opts.spool_max_bytes)
        self._seq = itertools.count(self._spool.max_seq + 1)
        self._queue: Inbox[_Pending] = Inbox(opts.queue_size)
        self._key = opts.key.encode()
        # Ids for records that have none: 64 random bits per sink, then a counter (32 hex).
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()
        self._producer: Any = None
        self._batcher: BatchSender | None = None
        self._batches = kafkabatch.usable(opts.producer)
        # Start degraded if an earlier run left records behind: they go first.
        self._degraded = len(self._spool) > 0
        self._backoff = opts.backoff_min_s
        self._next_attempt = 0.0
        self._closing = threading.Event()
        self._close_deadline = 0.0
        self._lock = threading.Lock()
        self._settled_cv = threading.Condition(self._lock)
        self._accepted = 0  # put on the queue
        self._settled = 0  # acknowledged, spooled or refused by the spool
        self._written = 0
        self._errors = 0  # records lost to a permanent error (the broker refuses them)
        self._send_failures = 0  # rounds that failed and went to the spool: nothing lost
        self._queue_dropped = 0
        self._spool_dropped = 0
        self._spooled_total = 0
        self._unreported_drops = 0
        self._next_drop_report = 0.0
        self._outages = 0
        self._outage_since: float | None = None  # monotonic start of the current outage
        self._outage_spooled_at_start = 0
        self._outage_s_done = 0.0  # length of the outages that ended
        # Write-ahead: a committer thread moves the queue to the spool; the sender sends
        # from the spool only. The lock makes the spool theirs in turn.
        self._spool_lock = threading.Lock()
        self._committed = threading.Event()
        self._committer: threading.Thread | None = None
        self._wal = opts.write_ahead_s is not None or opts.durable
        self._emit_lock = threading.Lock()  # durable: sequence numbers in commit order
        if opts.write_ahead_s is not None and not opts.durable:
            self._committer = threading.Thread(target=self._commit_loop, name=f"spool-{name}", daemon=True)
            self._committer.start()
        if not crc32c_accelerated():
            self.log.warning("kafka: no crc32c C module (Debian python3-crc32c): kafka-python "
                             "checksums batches in pure Python, about 4x slower")
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    # -- the consumer's side: never blocks (durable: one spool commit) -------------------

    def emit(self, record: dict[str, Any]) -> None:
        if self.opts.durable:
            self._emit_durable(record)
            return
        # Counted before the put: the sender may settle it before this thread runs again.
        with self._lock:
            self._accepted += 1
        if not self._queue.put(_Pending(next(self._seq), record)):
            with self._lock:
                self._accepted -= 1
                self._queue_dropped += 1

    def emit_encoded(self, value: bytes, rid: str) -> None:
        """emit() for a record encoded elsewhere: `value` is its JSON, `rid` its id."""
        with self._lock:
            self._accepted += 1
        if not self._queue.put(_Pending(next(self._seq), None, value, rid)):
            with self._lock:
                self._accepted -= 1
                self._queue_dropped += 1

    def _emit_durable(self, record: dict[str, Any]) -> None:
        with self._emit_lock:
            pending = _Pending(next(self._seq), record)
            with self._lock:
                self._accepted += 1
            try:
                encoded = self._encode(pending)
            except (TypeError, ValueError) as exc:  # not JSON-serialisable: lost, counted
                self.log.error("kafka record not serialisable: dropped", error=repr(exc))
                with self._settled_cv:
                    self._errors += 1
                    self._settled += 1
                return
            self._to_spool([encoded])
        self._committed.set()

    def flush(self, timeout: float) -> None:
        """Wait until nothing is held only in memory: acknowledged or spooled."""
        deadline = time.monotonic() + timeout
        with self._settled_cv:
            while self._accepted > self._settled and not self._closed():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._settled_cv.wait(remaining)

    def reopen(self) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        """Send what can be sent within `timeout`, spool the rest, stop the thread."""
        timeout = self.opts.close_timeout_s if timeout is None else timeout
        self._close_deadline = time.monotonic() + timeout
        self._closing.set()
        self._queue.wake()
        self._thread.join(timeout + self.opts.ack_timeout_s + 5)

    def stats(self) -> dict[str, int]:
        sp = self._spool.stats()
        with self._lock:
            return {
                "written": self._written,
                "errors": self._errors,
                "send_failures": self._send_failures,
                "dropped": self._queue_dropped + self._spool_dropped,
                "queue_dropped": self._queue_dropped,
                "spool_dropped": self._spool_dropped,
                "spool_dropped_total": sp.dropped,
                "queued": max(0, self._accepted - self._settled),
                "spooled": sp.depth,
                "spooled_bytes": sp.bytes,
                "spooled_total": self._spooled_total,
                "outages": self._outages,
                "outage_active": int(self._outage_since is not None),
                "outage_s": int(self._outage_s_done + (time.monotonic() - self._outage_since
                                                       if self._outage_since is not None else 0)),
            }

    def _closed(self) -> bool:
        return not self._thread.is_alive()

    # -- the sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._closing.is_set():
                try:
                    self._step()
                except Exception as exc:  # keep the thread alive: a dead sender loses data
                    with self._lock:
                        self._send_failures += 1
                    self.log.error("kafka sender error", error=repr(exc))
                    self._enter_degraded()
            self._finish()
        finally:
            self._close_producer()
            self._spool.close()
            with self._settled_cv:
                self._settled_cv.notify_all()

    def _step(self) -> None:
        if self._wal:
            now = time.monotonic()
            if now < self._next_attempt:
                self._closing.wait(min(0.05, self._next_attempt - now))
                return
            if len(self._spool) == 0:
                self._committed.wait(0.1)
                self._committed.clear()
                return
            self._drain_spool_round()
            return
        if self._degraded:
            self._spill_queue()
            now = time.monotonic()
            if now < self._next_attempt:
                self._closing.wait(min(0.05, self._next_attempt - now))
                return
            self._drain_spool_round()
            return
        batch = self._take(0.1)
        if batch:
            self._deliver(batch, time.monotonic() + self.opts.ack_timeout_s)

    def _commit_loop(self) -> None:
        """Write-ahead: every write_ahead_s, everything waiting in memory goes into the
        spool in one transaction, whatever the sender is waiting for meanwhile."""
        interval = self.opts.write_ahead_s or 0.005
        while True:
            closing = self._closing.wait(interval)
            try:
                self._commit_queue()
            except Exception as exc:  # keep committing: a dead committer loses data
                self.log.error("spool commit error", error=repr(exc))
            if closing:
                return

    def _commit_queue(self) -> None:
        batch = self._take_queued()
        if batch:
            self._to_spool(batch)
            self._committed.set()

    def _take_queued(self) -> list[SpoolRecord]:
        """Everything waiting in memory, in order; bounded, as under a flood the queue
        refills as fast as it is read."""
        batch: list[SpoolRecord] = []
        while len(batch) < self.opts.queue_size:
            more = self._take(0)
            if not more:
                break
            batch.extend(more)
        return batch

    def _finish(self) -> None:
        if self._wal:
            if self._committer is not None:
                self._committer.join()  # its last commit follows the close
            while len(self._spool) and time.monotonic() < self._close_deadline:
                before = len(self._spool)
                self._drain_spool_round()
                if len(self._spool) >= before:
                    break
            return
        while not self._degraded and time.monotonic() < self._close_deadline:
            batch = self._take(0)
            if not batch:
                break
            self._deliver(batch, min(self._close_deadline, time.monotonic() + self.opts.ack_timeout_s))
        self._spill_queue()

    def _take(self, block_s: float) -> list[SpoolRecord]:
        items = self._queue.take(self.opts.round_records, block_s)
        out = []
        for p in items:
            try:
                out.append(self._encode(p))
            except (TypeError, ValueError) as exc:  # not JSON-serialisable: lost, counted
                self.log.error("kafka record not serialisable: dropped", error=repr(exc))
                with self._settled_cv:
                    self._errors += 1
                    self._settled += 1
                    self._settled_cv.notify_all()
        return out

    def _encode(self, p: _Pending) -> SpoolRecord:
        if p.record is None:
            return SpoolRecord(p.seq, self.opts.topic, self._key, p.value, p.rid)
        value, rid = encode_record(p.record, self._id_prefix, self._ids)
        return SpoolRecord(p.seq, self.opts.topic, self._key, value, rid)

    def _spill_queue(self) -> None:
        """Move everything waiting in memory to the spool (in order, one transaction)."""
        batch = self._take_queued()
        if batch:
            self._to_spool(batch)
            self._degraded = True

    def _to_spool(self, records: list[SpoolRecord]) -> None:
        try:
            with self._spool_lock:
                refused = self._spool.append(records)
        except sqlite3.Error as exc:  # disk full, I/O error: the whole batch is lost
            self.log.error("spool write failed: records dropped", error=repr(exc),
                           dropped=len(records), spool=str(self.opts.spool_path))
            refused = len(records)
        if refused:
            self._unreported_drops += refused
        now = time.monotonic()
        if self._unreported_drops and now >= self._next_drop_report:
            # At most one warning per interval, with the count since the last one.
            self.log.warning("spool full: records dropped", dropped=self._unreported_drops,
                             spool=str(self.opts.spool_path), depth=len(self._spool))
            self._unreported_drops = 0
            self._next_drop_report = now + 10.0
        with self._settled_cv:
            self._spool_dropped += refused
            self._spooled_total += len(records) - refused
            self._settled += len(records)
            self._settled_cv.notify_all()

    def _deliver(self, batch: list[SpoolRecord], deadline: float) -> None:
        ok, poisoned = self._send_round(batch, deadline)
        with self._settled_cv:
            self._written += ok
            self._settled += ok
            self._settled_cv.notify_all()
        rest = batch[ok:]
        if poisoned:
            self._reject(rest[0], settle=True)
            rest = rest[1:]
        if rest:
            self._to_spool(rest)
            if poisoned:
                self._degraded = True  # not an outage: go on at once, through the spool
            else:
                self._enter_degraded()

    def _drain_spool_round(self) -> None:
        with self._spool_lock:
            batch = self._spool.peek(self.opts.round_records)
        if not batch and self._wal:
            return
        if not batch:
            self._degraded = False
            self._backoff = self.opts.backoff_min_s
            self.log.info("spool drained, sending directly")
            return
        deadline = time.monotonic() + self.opts.ack_timeout_s
        if self._closing.is_set():
            deadline = min(deadline, self._close_deadline)
        ok, poisoned = self._send_round(batch, deadline)
        done = ok + (1 if poisoned else 0)
        if poisoned:
            self._reject(batch[ok], settle=False)  # it was settled when it was spooled
        if done:
            with self._spool_lock:
                self._spool.delete_through(batch[done - 1].seq)
        with self._lock:
            self._written += ok
        if done < len(batch) and not poisoned:
            self._enter_degraded()
        else:
            self._backoff = self.opts.backoff_min_s
            self._next_attempt = 0.0

    def _reject(self, r: SpoolRecord, settle: bool) -> None:
        """A record the broker will never take (too large, invalid): lost, and counted."""
        self.log.error("kafka rejected record: dropped", id=r.rid, bytes=len(r.value))
        with self._settled_cv:
            self._errors += 1
            if settle:
                self._settled += 1
                self._settled_cv.notify_all()

    def _enter_degraded(self) -> None:
        if not self._degraded and not self._wal:
            self.log.warning("kafka unreachable: spooling", spool=str(self.opts.spool_path))
        self._degraded = True
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.opts.backoff_max_s)
        # A fresh producer after a failure: the broker may have restarted without our
        # producer id, and stale batches in the old one would only come back as duplicates.
        self._close_producer()

    def _ensure_producer(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(**self.opts.producer)
        return self._producer

    def _close_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                producer.close(timeout=0)
            except Exception as exc:
                self.log.debug("producer close failed", error=repr(exc))
        if self._batcher is not None:
            batcher, self._batcher = self._batcher, None
            try:
                batcher.close()
            except Exception as exc:
                self.log.debug("kafka client close failed", error=repr(exc))

    def _headers(self) -> list[tuple[str, bytes]]:
        """A record's headers; the first, its id, is filled in per record."""
        return [(ID_HEADER, b""), (STREAM_HEADER, self.opts.stream.encode()), *self.opts.extra_headers]

    def _send_round(self, batch: list[SpoolRecord], deadline: float) -> tuple[int, bool]:
        """Send `batch`. Returns how many leading records were acknowledged, and whether
        the next one was refused for itself (so retrying it would never succeed).

        As record batches built here (monitor/sinks/kafkabatch.py) where they can be;
        else, and for what the broker refuses for the records' own fault, one record at
        a time through KafkaProducer, which finds the record at fault."""
        if not self._batches or not batch:
            return self._send_records(batch, deadline)
        topic, key = batch[0].topic, batch[0].key
        headers = self._headers()
        # A spool left by a run with another topic or host name: KafkaProducer sorts it.
        if key is None or any(r.topic != topic or r.key != key for r in batch):
            return self._send_records(batch, deadline)
        try:
            if self._batcher is None:
                self._batcher = BatchSender(self.opts.producer)
            sender = self._batcher
        except Exception as exc:
            self._failed_round("kafka client unavailable", exc)
            return 0, False
        if not sender.fits(batch, headers):
            return self._send_records(batch, deadline)
        started = time.monotonic()
        try:
            acked = sender.deliver(topic, key, batch, headers, deadline,
                                   lambda: self._waited_too_long(started, deadline))
        except BatchRefused as exc:
            done, poisoned = self._send_records(batch[exc.acked:], deadline)
            return exc.acked + done, poisoned
        except RoundError as exc:
            self._failed_round("kafka delivery failed", exc.error)
            return exc.acked, False
        if acked == len(batch):
            self._outage_end()
        return acked, False

    def _waited_too_long(self, waited_from: float, deadline: float) -> bool:
        """While waiting for acknowledgements: past the deadline (the round failed), or
        slow enough to spool what waits in memory meanwhile."""
        now = time.monotonic()
        closing_over = self._closing.is_set() and now >= self._close_deadline
        if now >= deadline or closing_over:
            self._failed_round("kafka acknowledgement timed out", None)
            return True
        if now - waited_from > self.opts.spill_after_s:
            self._outage_start("kafka acknowledgements slow", None)
            if not self._wal:  # write-ahead commits by itself
                self._spill_queue()
        return False

    def _send_records(self, batch: list[SpoolRecord], deadline: float) -> tuple[int, bool]:
        """_send_round through KafkaProducer, a send() per record."""
        try:
            producer = self._ensure_producer()
        except Exception as exc:
            self._failed_round("kafka producer unavailable", exc)
            return 0, False
        headers = self._headers()
        futures = []
        send_error: Exception | None = None
        for r in batch:
            headers[0] = (ID_HEADER, r.rid.encode())
            try:
                futures.append(producer.send(r.topic, value=r.value, key=r.key,
                                             headers=list(headers)))
            except Exception as exc:  # metadata timeout, buffer full, record too large
                send_error = exc
                break
        waited_from = time.monotonic()
        for i, fut in enumerate(futures):
            while not fut.is_done:
                if self._waited_too_long(waited_from, deadline):
                    return i, False
                # A timeout of this wait, or the failure checked below.
                with contextlib.suppress(Exception):
                    fut.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            if fut.failed():
                if _is_poison(fut.exception):
                    return i, True
                self._failed_round("kafka delivery failed", fut.exception)
                return i, False
        if send_error is not None:
            if _is_poison(send_error):
                return len(futures), True
            self._failed_round("kafka send failed", send_error)
            return len(futures), False
        if futures:
            self._outage_end()
        return len(futures), False

    def _failed_round(self, what: str, exc: BaseException | None) -> None:
        with self._lock:
            self._send_failures += 1
        self._outage_start(what, exc)
        self.log.debug(what, error=repr(exc) if exc else None)

    def _outage_start(self, what: str, exc: BaseException | None) -> None:
        if self._outage_since is not None:
            return
        with self._lock:
            self._outages += 1
            self._outage_since = time.monotonic()
            self._outage_spooled_at_start = self._spooled_total
            outages = self._outages
        self.log.warning("kafka outage started", reason=what, error=repr(exc) if exc else None,
                         outages=outages, spool=str(self.opts.spool_path))

    def _outage_end(self) -> None:
        if self._outage_since is None:
            return
        with self._lock:
            length = time.monotonic() - self._outage_since
            self._outage_s_done += length
            self._outage_since = None
            spooled = self._spooled_total - self._outage_spooled_at_start
        self.log.warning("kafka outage ended", duration_s=round(length, 3), spooled=spooled,
                         spool_depth=len(self._spool))


def encode_record(rec: dict[str, Any], id_prefix: str, ids: Iterator[int]) -> tuple[bytes, str]:
    """A record's JSON and its id. Alerts carry "id", events "evt.id": the same id in every
    sink, for de-duplication; a record without either gets one here (uuid4 per record is
    slow: 64 random bits per sink, then a counter). Raises TypeError or ValueError for a
    record JSON cannot hold."""
    rid = rec.get("id") or rec.get("evt.id")
    if rid is None:
        rid = f"{id_prefix}{next(ids):016x}"
        rec = {"id": rid, **rec}
    return dumps_bytes(rec), str(rid)


def crc32c_accelerated() -> bool:
    """Whether kafka-python found the crc32c C module: every record batch it builds carries
    a CRC32C, and its pure-Python fallback was the Kafka output's ceiling (about 7k
    records/s against 30k/s with the module, bench/sink_rate.py)."""
    from kafka.record import util

    return getattr(util, "crc32c_c", None) is not None


def _is_poison(exc: BaseException | None) -> bool:
    """Errors about the record itself, not the broker: retrying cannot help."""
    import kafka.errors as ke

    names = ("MessageSizeTooLargeError", "RecordTooLargeError", "InvalidRecordError",
             "CorruptRecordError", "CorruptRecordException", "RecordListTooLargeError")
    kinds = tuple(k for k in (getattr(ke, n, None) for n in names) if isinstance(k, type))
    return exc is not None and isinstance(exc, kinds)
