"""`ringwatch run`: sensor -> enrich -> sinks, until a signal or the duration ends."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from monitor import log
from monitor.config import Config
from monitor.enrich import Enricher
from monitor.records import Record
from monitor.sensor import Sensor
from monitor.sinks.base import Sink


@dataclass
class RunOptions:
    duration: float | None = None
    event_sinks: list[Sink] = field(default_factory=list)


class Monitor:
    def __init__(self, cfg: Config, opts: RunOptions) -> None:
        self.cfg = cfg
        self.opts = opts
        self.log = log.get("ringwatch")
        self.enricher = Enricher()
        self.sensor = Sensor(cfg.sensor, self._on_record, log=self.log)
        self._stop = False

    def _on_record(self, rec: Record) -> None:
        ev = self.enricher.event(rec)
        for sink in self.opts.event_sinks:
            sink.emit(ev)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.log.info("signal", signal=signal.Signals(signum).name)
        self._stop = True

    def run(self) -> int:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._on_signal)
        t0 = time.monotonic()
        self.sensor.start()
        self.log.info("ready", startup_s=round(time.monotonic() - t0, 3), config=self.cfg.source)
        deadline = None if self.opts.duration is None else time.monotonic() + self.opts.duration
        try:
            while not self._stop:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.sensor.poll()
                for sink in self.opts.event_sinks:
                    sink.flush(0)
            self.sensor.drain()
        finally:
            counters = self.sensor.counters()
            self.sensor.close()
            for sink in self.opts.event_sinks:
                sink.close()
            self.log.info("stopped", **self._counter_fields(counters))
        return 0

    @staticmethod
    def _counter_fields(c: Any) -> dict[str, Any]:
        return {"produced": c.produced, "delivered": c.delivered, "drops": c.drops,
                "decode_errors": c.decode_errors}
