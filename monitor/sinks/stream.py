"""JSON lines (or readable text lines) on a text stream (stdout, which systemd hands to the journal)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from monitor.sinks.base import dumps


class StreamSink:
    """Each record is one write(2) of one whole line on the stream's file descriptor.

    Not through the TextIOWrapper: it buffers, may split a line across two flushes, and
    is not safe to share between threads; a reader tailing the file (or the journal
    reading the pipe) must only ever see whole lines. Streams without a descriptor
    (tests' StringIO) are written to directly.
    """

    def __init__(self, name: str = "stdout", stream: TextIO | None = None,
                 fmt: Callable[[dict[str, Any]], str] = dumps) -> None:
        self.name = name
        self._fmt = fmt
        self._stream = stream or sys.stdout
        try:
            self._stream.flush()
            self._fd: int | None = self._stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            self._fd = None
        self._written = 0
        self._errors = 0

    def emit(self, record: dict[str, Any]) -> None:
        line = self._fmt(record) + "\n"
        try:
            if self._fd is None:
                self._stream.write(line)
            else:
                data = line.encode("utf-8", "surrogateescape")
                while data:  # a pipe or socket may take part of it
                    data = data[os.write(self._fd, data):]
            self._written += 1
        except (OSError, ValueError):
            self._errors += 1

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
