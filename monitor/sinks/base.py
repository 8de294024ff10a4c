"""The one small interface every output implements."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

try:
    import orjson
except ImportError:  # the Debian package (Architecture: all) ships no compiled module
    orjson = None  # type: ignore[assignment]


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
# orjson writes what _ENCODE writes (compact, UTF-8, dict order, default=str for what JSON
# has no type for; dataclasses and datetimes go to str too, as they do there), ten times
# faster: JSON was a third of the pipeline's CPU with every event out. It refuses what
# _ENCODE takes: strings holding lone surrogates (a path of invalid UTF-8 bytes, decoded
# with surrogateescape so that the file sink writes the bytes back), integers beyond 64
# bits, non-string keys. Those records go to _ENCODE. tests/test_sinks_json.py checks
# the two agree byte for byte on recorded events and alerts (a float's exponent is
# spelt 1e-7 where json writes 1e-07: the same number).
# Without orjson (the .deb), every record goes to _ENCODE.
_FAST: Callable[..., bytes] | None = orjson.dumps if orjson is not None else None
_FAST_OPTIONS = 0 if orjson is None else orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
FAST_JSON = _FAST is not None


def dumps(record: dict[str, Any]) -> str:
    if _FAST is None:
        return _ENCODE(record)
    try:
        return _FAST(record, default=str, option=_FAST_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError
        return _ENCODE(record)


_LINE_OPTIONS = 0 if orjson is None else _FAST_OPTIONS | orjson.OPT_APPEND_NEWLINE


def dumps_line(record: dict[str, Any]) -> bytes:
    """dumps() and a newline, as a file holds it: a string of invalid UTF-8 bytes (read
    with surrogateescape) is written back as those bytes. orjson's own bytes need no
    decode and re-encode (that was a third of the file output's thread)."""
    if _FAST is not None:
        try:
            return _FAST(record, default=str, option=_LINE_OPTIONS)
        except TypeError:
            pass
    return (_ENCODE(record) + "\n").encode("utf-8", "surrogateescape")


def dumps_bytes(record: dict[str, Any]) -> bytes:
    """dumps() as UTF-8 (strictly: a record of invalid UTF-8 raises UnicodeEncodeError)."""
    if _FAST is None:
        return _ENCODE(record).encode()
    try:
        return _FAST(record, default=str, option=_FAST_OPTIONS)
    except TypeError:
        return _ENCODE(record).encode()


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
