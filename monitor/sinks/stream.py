"""JSON lines on a text stream (stdout, which systemd hands to the journal)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from monitor.sinks.base import dumps


class StreamSink:
    def __init__(self, name: str = "stdout", stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream or sys.stdout
        self._written = 0
        self._errors = 0

    def emit(self, record: dict[str, Any]) -> None:
        try:
            self._stream.write(dumps(record) + "\n")
            self._written += 1
        except (OSError, ValueError):
            self._errors += 1

    def flush(self, timeout: float) -> None:
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
