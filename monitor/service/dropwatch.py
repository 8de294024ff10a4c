"""The drop alert: a CRITICAL alert when records were lost, rate-limited like Falco's
syscall_event_drops.

Lost records are silent gaps in what the monitor saw, so they are reported through the
same alert outputs as rule matches. Counts only ever grow; each alert carries the
growth since the previous alert, so nothing lost while rate-limited goes unreported.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.rules.alert import Alert
from monitor.service.ratelimit import AlertRateLimit
from monitor.service.stats import LossCounts

RULE = "ringwatch: events dropped"
PRIORITY = "CRITICAL"


def _diff(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0) > 0}


@dataclass
class DropWatch(AlertRateLimit):
    # How often counters are read at all: reading them costs map lookups.
    check_interval_s: float = 1.0
    # Checks that found new drops but were held back by the rate limit.
    suppressed: int = 0
    _baseline: LossCounts = field(default_factory=lambda: LossCounts({}, {}))
    _baseline_time: float | None = None
    _last_check: float | None = None

    def start(self, now: float) -> None:
        self._baseline_time = now

    def due(self, now: float) -> bool:
        return self._last_check is None or now - self._last_check >= self.check_interval_s

    def check(self, loss: LossCounts, now: float) -> dict[str, Any] | None:
        """An alert if drops grew since the last alert and the rate limit allows one."""
        self._last_check = now
        if loss.total() <= self._baseline.total():
            return None
        if not self.allow(now):
            self.suppressed += 1
            return None
        kernel = _diff(loss.kernel, self._baseline.kernel)
        user = _diff(loss.userspace, self._baseline.userspace)
        since = self._baseline_time if self._baseline_time is not None else now
        self._baseline = LossCounts(dict(loss.kernel), dict(loss.userspace))
        self._baseline_time = now
        return build_alert(kernel, user, now - since, loss.lanes)

    def stats(self) -> dict[str, int | float]:
        return {
            "alerts": self.alerts,
            "suppressed_checks": self.suppressed,
            "min_interval_s": self.min_interval_s,
        }


def build_alert(
    kernel: dict[str, int], user: dict[str, int], window_s: float,
    lanes: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """An alert in the same shape as rule matches, so every output and consumer takes it."""
    n_kernel = sum(kernel.values())
    n_user = sum(user.values())
    parts = [f"{k}={v}" for k, v in sorted(kernel.items())] + [
        f"{k}={v}" for k, v in sorted(user.items())
    ]
    fields: dict[str, Any] = {
        "n_drops": n_kernel + n_user,
        "n_drops_kernel": n_kernel,
        "n_drops_userspace": n_user,
        "window_s": round(window_s, 3),
    }
    fields.update({f"kernel.{k}": v for k, v in kernel.items()})
    fields.update({f"userspace.{k}": v for k, v in user.items()})
    # Cumulative, per lane: produced = delivered + coalesced + throttled + lost (+ in flight).
    for lane, terms in (lanes or {}).items():
        fields.update({f"lane.{lane}.{k}": v for k, v in terms.items()})
    lane_text = "".join(
        f"; {lane} lane: {t.get('lost', 0)} lost of {t.get('produced', 0)} produced"
        for lane, t in (lanes or {}).items()
    )
    alert = Alert(
        rule=RULE,
        priority=PRIORITY,
        tags=["ringwatch", "internal", "drops"],
        action="alert",
        output=(
            f"ringwatch: {n_kernel + n_user} records dropped in the last {window_s:.1f}s "
            f"({', '.join(parts)}){lane_text}; events were not seen by the rules"
        ),
        output_fields=fields,
        event={},
        host=socket.gethostname(),
        time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
    )
    return alert.to_dict()
