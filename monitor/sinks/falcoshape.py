"""Alerts rewritten in Falco's JSON output shape on their way to one output.

Tools that read Falco's `json_output` (falcosidekick, SIEM parsers) then take
ringwatch's alerts unchanged: time, rule, priority, output, output_fields, hostname,
source, tags (monitor.rules.alert.falco_shape).
"""

from __future__ import annotations

from typing import Any

from monitor.rules.alert import falco_shape
from monitor.sinks.base import WrappedSink


class FalcoShapeSink(WrappedSink):
    def emit(self, record: dict[str, Any]) -> None:
        self.inner.emit(falco_shape(record))
