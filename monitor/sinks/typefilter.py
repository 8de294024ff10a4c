"""Passes on only events of some types: `run --events execve,execveat`."""

from __future__ import annotations

from typing import Any

from monitor.sinks.base import Sink, WrappedSink


class TypeFilterSink(WrappedSink):
    def __init__(self, inner: Sink, types: frozenset[str]) -> None:
        super().__init__(inner)
        self.types = types

    def emit(self, record: dict[str, Any]) -> None:
        if record.get("evt.type") in self.types:
            self.inner.emit(record)
