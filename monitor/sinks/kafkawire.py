"""The frames between ringwatch and its Kafka worker process (monitor/sinks/kafkaproc.py).

To the worker (its stdin), a header `<cII` then a payload:
- `O` options: a = payload length, b = 0; the payload is a pickle of WorkerStart (the
  first frame, once);
- `R` record: a = id length, b = JSON length; the payload is the id, then the JSON;
- `F` flush: a = token, b = timeout in ms; no payload;
- `C` close: a = 0, b = timeout in ms; no payload (the last frame).

From the worker (its stdout), a header `<cI` (kind, payload length), then JSON:
- `S` stats: {"token": the flush answered, or null for a periodic report, "stats": {...}};
- `E` the final stats, after the sink closed: {"token": null, "stats": {...}}.
"""

from __future__ import annotations

import json
import os
import signal
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

TO_WORKER = struct.Struct("<cII")
FROM_WORKER = struct.Struct("<cI")

OPTIONS = b"O"
RECORD = b"R"
FLUSH = b"F"
CLOSE = b"C"
STATS = b"S"
END = b"E"

# What the worker ignores, so that it outlives ringwatch's shutdown (kafkaworker.py).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class WorkerStart:
    """What the worker is started with: the sink it runs and how it logs."""

    options: Any  # monitor.sinks.kafka.KafkaSinkOptions (not imported here: no kafka-python)
    name: str
    log_level: str
    log_json: bool


def record_frame(rid: bytes, value: bytes) -> bytes:
    return TO_WORKER.pack(RECORD, len(rid), len(value)) + rid + value


def control_frame(kind: bytes, a: int, b: int) -> bytes:
    return TO_WORKER.pack(kind, a, b)


def reply_frame(kind: bytes, token: int | None, stats: dict[str, int]) -> bytes:
    body = json.dumps({"token": token, "stats": stats}).encode()
    return FROM_WORKER.pack(kind, len(body)) + body


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of `data` is written (a pipe takes what fits)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class FrameReader:
    """Frames out of a byte stream read in large chunks (one read returns many records)."""

    def __init__(self, header: struct.Struct) -> None:
        self.header = header
        self._buf = bytearray()
        self._pos = 0

    def feed(self, chunk: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += chunk

    def pending(self) -> int:
        """Bytes of an unfinished frame left over (nonzero at end of stream: torn)."""
        return len(self._buf) - self._pos

    def frames(self) -> Iterator[tuple[Any, ...]]:
        """Each whole frame as its header fields plus the payload (bytes)."""
        buf, size, unpack = self._buf, self.header.size, self.header.unpack_from
        while len(buf) - self._pos >= size:
            fields = unpack(buf, self._pos)
            length = _payload_length(fields)
            end = self._pos + size + length
            if end > len(buf):
                return
            payload = bytes(buf[self._pos + size:end])
            self._pos = end
            yield (*fields, payload)


def _payload_length(fields: tuple[Any, ...]) -> int:
    kind = fields[0]
    if len(fields) == 2:  # from the worker: kind, length
        return int(fields[1])
    if kind == RECORD:
        return int(fields[1]) + int(fields[2])
    if kind == OPTIONS:
        return int(fields[1])
    return 0
