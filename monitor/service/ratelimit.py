"""One alert per interval: the rate limit the drop and throttle alerts share.

Falco limits its syscall_event_drops alert to rate 1/30 s with max_burst 1; ringwatch's
internal alerts do the same, and each alert says what happened while it was held back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class AlertRateLimit:
    # At most one alert per this many seconds (drop_alert.min_interval_s).
    min_interval_s: float = 30.0
    alerts: int = 0
    # kw_only: subclasses add fields; positional construction would mean the wrong ones.
    _last_alert: float | None = None

    def allow(self, now: float) -> bool:
        """True, and counted as an alert sent, unless one went out less than min_interval_s ago."""
        if self._last_alert is not None and now - self._last_alert < self.min_interval_s:
            return False
        self._last_alert = now
        self.alerts += 1
        return True
