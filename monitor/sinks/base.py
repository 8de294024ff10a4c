"""The one small interface every output implements."""

from __future__ import annotations

import json
from typing import Any, Protocol


class Sink(Protocol):
    """A destination for JSON-serialisable records (events or alerts).

    emit() must not block the ring-buffer consumer for long: a sink that talks to a
    network does its I/O elsewhere and bounds (and counts) its backlog. Such a sink
    serialises the record later, on its own thread: callers must not change a record
    after emitting it.

    stats() counters, all ints: written (delivered), errors (records lost to an error),
    dropped (records thrown away, e.g. a full queue), queued (held in memory now), and
    for sinks with a spool, spooled (held on disk now). Absent keys mean zero.
    """

    name: str

    def emit(self, record: dict[str, Any]) -> None: ...

    def flush(self, timeout: float) -> None: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


# json.dumps() with any non-default argument builds a new encoder on every call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def dumps(record: dict[str, Any]) -> str:
    return _ENCODE(record)


class WrappedSink:
    """A sink in front of another: changes or filters what is emitted, passes the rest on."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name

    def emit(self, record: dict[str, Any]) -> None:
        self.inner.emit(record)

    def flush(self, timeout: float) -> None:
        self.inner.flush(timeout)

    def reopen(self) -> None:
        self.inner.reopen()

    def close(self) -> None:
        self.inner.close()

    def stats(self) -> dict[str, int]:
        return self.inner.stats()
