"""The health snapshot a running daemon reports through `ringwatch stats`.

A snapshot is a plain JSON-able dict so that other parts of the daemon (lineage maps,
rule reload, enforcement) can add their own sections without a schema change here;
`render_text` prints whatever nesting it finds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.kernel.records import RECORD_LOST, DropReason

# Sink stats keys that mean a record was thrown away rather than delivered.
SINK_LOSS_KEYS = ("dropped", "errors")


class _Counters(Protocol):
    produced: dict[str, int]
    drops: dict[str, int]
    delivered: dict[str, int]
    decode_errors: int


class _HasStats(Protocol):
    name: str

    def stats(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class LossCounts:
    """Cumulative records lost, by where they were lost; the drop alert diffs these.

    lanes: each lane's accounting (produced, delivered, coalesced, throttled, lost), for
    the alert to show; not part of the total (its losses are in kernel already)."""

    kernel: dict[str, int]
    userspace: dict[str, int]
    lanes: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.kernel.values()) + sum(self.userspace.values())


def losses(counters: _Counters, sinks: Mapping[str, Mapping[str, int]]) -> LossCounts:
    """Whole records lost: in the kernel (ring buffer full, no pending slot, exit without
    enter), in decoding, and in each output (backlog overflow or write error)."""
    kernel = {r.name.lower(): counters.drops.get(r.name.lower(), 0) for r in sorted(RECORD_LOST)}
    user = {"decode_errors": counters.decode_errors}
    for name, st in sinks.items():
        for key in SINK_LOSS_KEYS:
            if key in st:
                user[f"output.{name}.{key}"] = st[key]
    return LossCounts(kernel, user, lane_table(counters))


def lane_table(counters: Any) -> dict[str, dict[str, int]]:
    """Per lane: the identity's terms, and whether they add up (0 = exact)."""
    out: dict[str, dict[str, int]] = {}
    for lane, c in getattr(counters, "lanes", {}).items():
        out[lane] = {**c.as_dict(), "unaccounted": c.unaccounted()}
    return out


def sink_stats(sinks: Sequence[_HasStats]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for s in sinks:
        name = s.name
        # Two sinks of one name (say two file outputs) must not hide each other.
        n = 2
        while name in out:
            name = f"{s.name}#{n}"
            n += 1
        out[name] = dict(s.stats())
    return out


def collect(
    counters: _Counters,
    *,
    started_monotonic: float,
    config_source: str,
    ringbuf_bytes: int,
    outputs: Mapping[str, Mapping[str, int]],
    alerts_by_rule: Mapping[str, int],
) -> dict[str, Any]:
    """The core snapshot; the daemon adds sections (lineage, rules) to the result."""
    loss = losses(counters, outputs)
    partial = {
        r.name.lower(): counters.drops.get(r.name.lower(), 0)
        for r in DropReason
        if r not in RECORD_LOST
    }
    return {
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - started_monotonic, 3),
        "config": config_source,
        "events": dict(counters.delivered),
        "produced": dict(counters.produced),
        "alerts": {"total": sum(alerts_by_rule.values()), "by_rule": dict(sorted(alerts_by_rule.items()))},
        "drops": {
            "records_lost": loss.total(),
            "kernel": loss.kernel,
            "userspace": loss.userspace,
            # Records that arrived with a field cut short or unreadable.
            "partial": partial,
        },
        "ringbuf": {"bytes": ringbuf_bytes},
        # delivered + coalesced + throttled + lost == produced, per lane; "unaccounted"
        # is what is still in flight (0 once tracing stops).
        "lanes": {
            lane: {**terms, **getattr(counters, "rings", {}).get(lane, {})}
            for lane, terms in loss.lanes.items()
        },
        "flood": {
            **getattr(counters, "flood", {}),
            "coalesce_tails": getattr(counters, "coalesce_tails", 0),
            "coalesce_tail_repeats": getattr(counters, "coalesce_tail_repeats", 0),
            "throttled_by": getattr(counters, "throttled_by", {}),
        },
        "outputs": {k: dict(v) for k, v in outputs.items()},
    }


def render_text(snapshot: Mapping[str, Any], indent: int = 0) -> str:
    """Indented `key: value` lines, sections in the order the daemon built them."""
    lines: list[str] = []
    pad = "  " * indent
    for key, value in snapshot.items():
        if isinstance(value, Mapping):
            if not value:
                lines.append(f"{pad}{key}: (none)")
                continue
            lines.append(f"{pad}{key}:")
            lines.append(render_text(value, indent + 1))
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: {', '.join(str(v) for v in value) or '(none)'}")
        else:
            lines.append(f"{pad}{key}: {'-' if value is None else value}")
    return "\n".join(lines)
