"""Alerts rewritten in Falco's JSON output shape on their way to one output.

Tools that read Falco's `json_output` (falcosidekick, SIEM parsers) then take
ringwatch's alerts unchanged: time, rule, priority, output, output_fields, hostname,
source, tags (monitor.rules.alert.falco_shape).
"""

from __future__ import annotations

from typing import Any

from monitor.rules.alert import falco_shape
from monitor.sinks.base import Sink


class FalcoShapeSink:
    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name

    def emit(self, record: dict[str, Any]) -> None:
        self.inner.emit(falco_shape(record))

    def flush(self, timeout: float) -> None:
        self.inner.flush(timeout)

    def reopen(self) -> None:
        self.inner.reopen()

    def close(self) -> None:
        self.inner.close()

    def stats(self) -> dict[str, int]:
        return self.inner.stats()
