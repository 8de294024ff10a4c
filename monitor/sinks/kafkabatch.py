"""A round of Kafka records as v2 record batches on kafka-python's network client.

KafkaProducer costs about 30 us of Python per record (send(), the accumulator, a future
and its callbacks per record, the sender thread's bookkeeping): measured with
bench/sink_rate.py, it held the events stream to Kafka near 17k records/s while the
file output took 37k. A round here is built with kafka-python's own record batch
builder (DefaultRecordBatchBuilder, about 3 us a record) into batches of at most
`batch_size` bytes, sent as ProduceRequests on kafka-python's client (KafkaNetClient:
its connections, security settings, API version negotiation and metadata) and waited
for in order, by the caller's thread alone: no sender thread, no future per record.

What a KafkaProducer would do differently is left to it (KafkaSink keeps it for these):
compression and transactions are not built here (`usable` says no), and a batch the
broker refuses for its records (too large, invalid) is handed back, so that the records
go one by one through KafkaProducer, which finds the one at fault.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.sinks.spool import SpoolRecord

# The fields of a record batch header and of a record's framing that a batch may hold
# beyond its records' keys, values and headers (DefaultRecordBatch: 61 bytes of header).
BATCH_OVERHEAD = 61
RECORD_OVERHEAD = 32
# Record batches of magic 2 need Produce v3 (Kafka 0.11).
MIN_PRODUCE_VERSION = 3


class RoundError(Exception):
    """A round stopped after `acked` leading records were acknowledged, for `error`."""

    def __init__(self, acked: int, error: BaseException) -> None:
        super().__init__(repr(error))
        self.acked = acked
        self.error = error


class BatchRefused(RoundError):
    """The broker refused a batch for its records: retrying it whole cannot help."""


@dataclass
class Pending:
    """One ProduceRequest in flight: its future and how many of the round's records it holds."""

    future: Any
    records: int


def usable(configs: dict[str, Any]) -> bool:
    """Whether rounds may go as batches built here (else KafkaProducer sends them)."""
    compression = configs.get("compression_type")
    return compression in (None, "none") and not configs.get("transactional_id")


class BatchSender:
    def __init__(self, configs: dict[str, Any]) -> None:
        from kafka.net.compat import KafkaNetClient

        acks = configs.get("acks", -1)
        self._acks = -1 if acks == "all" else int(acks)
        self._timeout_ms = int(configs.get("request_timeout_ms", 30000))
        self._batch_bytes = int(configs.get("batch_size", 16384))
        self._max_request = int(configs.get("max_request_size", 1048576))
        self._max_in_flight = max(1, int(configs.get("max_in_flight_requests_per_connection", 5)))
        self._bootstrap_ms = int(configs.get("bootstrap_timeout_ms", configs.get("max_block_ms", 60000)))
        self._client = KafkaNetClient(**configs)
        self._client.get_broker_version(self._bootstrap_ms)
        self._topics: set[str] = set()

    def close(self) -> None:
        self._client.close()

    def fits(self, records: Sequence[SpoolRecord], headers: Sequence[tuple[str, bytes]]) -> bool:
        """Whether every record is within max_request_size (KafkaProducer refuses one
        beyond it before sending: such a round goes through it, to be found)."""
        extra = RECORD_OVERHEAD + BATCH_OVERHEAD + sum(len(k) + len(v) for k, v in headers)
        limit = self._max_request - extra
        return all(len(r.value) + len(r.key or b"") + len(r.rid) <= limit for r in records)

    def leader(self, topic: str, key: bytes, deadline: float) -> tuple[int, Any]:
        """The partition KafkaProducer's DefaultPartitioner gives `key`, and its leader."""
        from kafka.errors import KafkaTimeoutError, LeaderNotAvailableError
        from kafka.partitioner.default import murmur2
        from kafka.structs import TopicPartition

        cluster = self._client.cluster
        if topic not in self._topics:
            self._topics.add(topic)
            self._client.poll(timeout_ms=self._ms_until(deadline), future=cluster.add_topic(topic))
        parts = cluster.partitions_for_topic(topic)
        while parts is None:
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"no metadata for topic {topic}")
            self._client.poll(timeout_ms=min(200, self._ms_until(deadline)), future=cluster.request_update())
            parts = cluster.partitions_for_topic(topic)
        ordered = sorted(parts)
        partition = ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)]
        node = cluster.leader_for_partition(TopicPartition(topic, partition))
        if node is None or node == -1:
            cluster.request_update()
            raise LeaderNotAvailableError(f"no leader for {topic}/{partition}")
        return partition, node

    def deliver(self, topic: str, key: bytes, records: Sequence[SpoolRecord],
                headers: list[tuple[str, bytes]], deadline: float,
                given_up: Callable[[], bool]) -> int:
        """Send `records` in batches of at most batch_size bytes, at most
        max_in_flight_requests_per_connection requests at a time, and wait for each in
        order; headers[0]'s value is each record's id. Returns how many were acknowledged:
        all, or fewer when `given_up()` (asked every 0.2 s of waiting) said so. Raises
        RoundError, or BatchRefused for the records' own fault."""
        acked = 0
        try:
            partition, node = self.leader(topic, key, deadline)
            self._client.await_ready(node, timeout_ms=self._ms_until(deadline))
            built = self._batches(records, headers)
            in_flight: deque[Pending] = deque()
            sent = 0
            while sent < len(built) or in_flight:
                while sent < len(built) and len(in_flight) < self._max_in_flight:
                    data, n = built[sent]
                    future = self._client.send(node, self._request(topic, partition, data))
                    in_flight.append(Pending(future, n))
                    sent += 1
                while not self._wait(in_flight[0], min(0.2, deadline - time.monotonic())):
                    if given_up():
                        return acked
                acked += in_flight.popleft().records
        except BatchRefused as exc:
            raise BatchRefused(acked, exc.error) from exc.error
        except Exception as exc:  # connection, timeout, a retriable broker error
            raise RoundError(acked, exc) from exc
        return acked

    def _batches(self, records: Sequence[SpoolRecord],
                 headers: list[tuple[str, bytes]]) -> list[tuple[bytes, int]]:
        from kafka.record.default_records import DefaultRecordBatchBuilder

        out: list[tuple[bytes, int]] = []
        hdrs = list(headers)
        id_name = hdrs[0][0]
        i = 0
        while i < len(records):
            builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, self._batch_bytes)
            now_ms = int(time.time() * 1000)
            n = 0
            while i + n < len(records):
                r = records[i + n]
                hdrs[0] = (id_name, r.rid.encode())
                # None: the batch is full (its first record always fits).
                if builder.append(n, now_ms, r.key, r.value, hdrs) is None:
                    break
                n += 1
            out.append((bytes(builder.build()), n))
            i += n
        return out

    def _request(self, topic: str, partition: int, data: bytes) -> Any:
        from kafka.protocol.producer import ProduceRequest

        topic_data = ProduceRequest.TopicProduceData
        return ProduceRequest(
            transactional_id=None, acks=self._acks, timeout_ms=self._timeout_ms,
            topic_data=[topic_data(name=topic, partition_data=[
                topic_data.PartitionProduceData(index=partition, records=data)])],
            min_version=MIN_PRODUCE_VERSION, max_version=9)

    def _wait(self, p: Pending, timeout_s: float) -> bool:
        """Wait up to timeout_s for one request; True when it has its answer."""
        import kafka.errors as ke

        self._client.poll(timeout_ms=max(0, int(timeout_s * 1000)), future=p.future)
        if not p.future.is_done:
            return False
        if p.future.failed():
            raise p.future.exception
        if self._acks == 0:
            return True
        for topic in p.future.value.responses:
            for part in topic.partition_responses:
                if part.error_code:
                    error = ke.for_code(part.error_code)(getattr(part, "error_message", None))
                    if error.retriable or getattr(error, "invalid_metadata", False):
                        self._client.cluster.request_update()
                        raise error
                    raise BatchRefused(0, error)
        return True

    @staticmethod
    def _ms_until(deadline: float) -> int:
        return max(0, int((deadline - time.monotonic()) * 1000))
