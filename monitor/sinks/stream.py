"""JSON lines (or readable text lines) on a text stream (stdout, which systemd hands to the journal)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from monitor.sinks.base import dumps, dumps_line


class StreamSink:
    """Each record is one whole line written with write(2) on the stream's file
    descriptor (a batch of them, with emit_batch).

    Not through the TextIOWrapper: it buffers, may split a line across two flushes, and
    is not safe to share between threads; a reader tailing the file (or the journal
    reading the pipe) must only ever see whole lines. Streams without a descriptor
    (tests' StringIO) are written to directly.
    """

    def __init__(self, name: str = "stdout", stream: TextIO | None = None,
                 fmt: Callable[[dict[str, Any]], str] = dumps) -> None:
        self.name = name
        self._fmt = fmt
        # JSON lines straight from orjson's bytes; other formats are text to encode.
        self._line: Callable[[dict[str, Any]], bytes] = dumps_line if fmt is dumps else self._encoded
        self._stream = stream or sys.stdout
        try:
            self._stream.flush()
            self._fd: int | None = self._stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            self._fd = None
        self._written = 0
        self._errors = 0

    def _encoded(self, record: dict[str, Any]) -> bytes:
        return (self._fmt(record) + "\n").encode("utf-8", "surrogateescape")

    def emit(self, record: dict[str, Any]) -> None:
        try:
            if self._fd is None:
                self._stream.write(self._fmt(record) + "\n")
            else:
                data = self._line(record)
                while data:  # a pipe or socket may take part of it
                    data = data[os.write(self._fd, data):]
            self._written += 1
        except (OSError, ValueError):
            self._errors += 1

    def emit_batch(self, records: list[dict[str, Any]]) -> None:
        """Many whole lines in one write (AsyncSink's worker hands over what waits): a
        write(2) per record released and took back the interpreter lock each time, and
        beside a busy pipeline every take waited, so alerts on stdout fell behind."""
        if self._fd is None:
            for record in records:
                self.emit(record)
            return
        lines: list[bytes] = []
        for record in records:
            try:
                lines.append(self._line(record))
            except (TypeError, ValueError):  # not serialisable: lost, counted
                self._errors += 1
        data = memoryview(b"".join(lines))
        sent = 0
        try:
            while sent < len(data):  # one writer: lines stay whole across partial writes
                sent += os.write(self._fd, data[sent:])
        except OSError:
            pass
        done, total = 0, 0
        for line in lines:
            total += len(line)
            if total > sent:
                break
            done += 1
        self._written += done
        self._errors += len(lines) - done

    def flush(self, timeout: float) -> None:
        if self._fd is not None:
            return  # nothing is buffered
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self._errors += 1

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        self.flush(0)

    def stats(self) -> dict[str, int]:
        return {"written": self._written, "errors": self._errors}
