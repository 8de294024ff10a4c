"""Passes on only events of some types: `run --events execve,execveat`."""

from __future__ import annotations

from typing import Any

from monitor.sinks.base import Sink


class TypeFilterSink:
    def __init__(self, inner: Sink, types: frozenset[str]) -> None:
        self.inner = inner
        self.types = types
        self.name = inner.name

    def emit(self, record: dict[str, Any]) -> None:
        if record.get("evt.type") in self.types:
            self.inner.emit(record)

    def flush(self, timeout: float) -> None:
        self.inner.flush(timeout)

    def reopen(self) -> None:
        self.inner.reopen()

    def close(self) -> None:
        self.inner.close()

    def stats(self) -> dict[str, int]:
        return self.inner.stats()
